/**
 * Errors of the schema area, typed by what the caller does next:
 * - `RegistryUnavailableError` (retriable): the registry cannot be reached, timed out or failed (5xx); nothing is
 *   wrong with the record or the schema — wait and retry.
 * - `RegistryAuthError` (retriable): the registry refused our credentials; not a record's fault either, so a
 *   worker retries (and logs it) rather than dead-lettering every record — fix the credentials.
 * - `SchemaRegistryError`: the registry answered no to a request (unexpected status); `InvalidSchemaError`: the
 *   schema is not valid Avro (locally, or the registry says 422).
 * - `SchemaIncompatibleError`: a new schema would break readers or writers of a subject; evolve it differently.
 * - `DecimalError`: a decimal value or text does not fit its precision/scale; fix the value.
 * - `AvroEncodeError`: a value does not match the serde's schema; fix the producing code.
 * - `AvroDecodeError` and its subclasses: one record's bytes cannot be read; the record is dead-lettered and the
 *   message (its `weir.dlq.error` header) says which case it is.
 */
import { WeirError } from '../runtime/errors.js';

export class SchemaRegistryError extends WeirError {
  constructor(
    message: string,
    readonly status?: number,
    opts: { cause?: unknown; retriable?: boolean } = {},
  ) {
    super(message, opts);
  }
}

/** The registry is down, slow, failing or refusing our credentials: not the fault of a record or schema. */
export class RegistryUnavailableError extends SchemaRegistryError {
  constructor(readonly url: string, message: string, status?: number, cause?: unknown) {
    super(message, status, { cause, retriable: true });
  }
}

/** The registry refused our credentials (401/403). Retriable: the records are fine; fix the configuration. */
export class RegistryAuthError extends SchemaRegistryError {
  constructor(readonly url: string, message: string, status: number, cause?: unknown) {
    super(message, status, { cause, retriable: true });
  }
}

export class InvalidSchemaError extends SchemaRegistryError {}

export class SchemaIncompatibleError extends WeirError {
  constructor(
    readonly subject: string,
    /** The compatibility level that was checked, e.g. 'BACKWARD'. */
    readonly level: string,
    /** Why, naming the field where there is one. */
    readonly reason: string,
    /** The registered version the new schema conflicts with, when known. */
    readonly version?: number,
    cause?: unknown,
  ) {
    super(
      `subject ${subject}: the new schema is not ${level} compatible with ${version === undefined ? 'the registered schema' : `version ${version}`}: ${reason}`,
      { cause },
    );
  }
}

export class DecimalError extends WeirError {}

export class AvroEncodeError extends WeirError {}

/** A record's bytes cannot be read as the serde's type. Never retriable: the same bytes fail the same way. */
export class AvroDecodeError extends WeirError {}

/** The first byte is not the Confluent wire format's magic byte 0. */
export class WrongMagicByteError extends AvroDecodeError {
  constructor(readonly magicByte: number) {
    const hint = magicByte === 0x7b ? " ('{': looks like JSON)" : '';
    super(`wrong magic byte 0x${hex(magicByte)}${hint}: not Confluent wire format, which starts with 0x00 and a 4-byte schema id`);
  }
}

/** Too short for the 5-byte header, or the Avro body ends before the record does. */
export class TruncatedRecordError extends AvroDecodeError {}

/** The schema id in the header is not known to the registry (404). */
export class UnknownSchemaIdError extends AvroDecodeError {
  constructor(readonly schemaId: number, registryUrl: string) {
    super(`unknown schema id ${schemaId}: the registry at ${registryUrl} has no such schema`);
  }
}

/** The writer's schema cannot be resolved to the reader's (Avro schema resolution). */
export class SchemaResolutionError extends AvroDecodeError {
  constructor(readonly schemaId: number, readonly detail: string) {
    super(`writer schema id ${schemaId} does not resolve to the reader schema: ${detail}`);
  }
}

/** Bytes are left after the Avro record. */
export class TrailingBytesError extends AvroDecodeError {
  constructor(readonly schemaId: number, readonly trailing: number, readonly bodyLength: number) {
    super(`${trailing} trailing byte(s) after the Avro record (schema id ${schemaId}, body of ${bodyLength} bytes)`);
  }
}

function hex(b: number): string {
  return b.toString(16).padStart(2, '0');
}
