/**
 * Avro values in the Confluent wire format: magic byte 0, the writer schema's registry id (4 bytes, big-endian),
 * then the Avro binary body.
 * - Serialize writes with the serde's own schema, registered (or looked up) under `<topic>-value`; the id is
 *   cached per topic.
 * - Deserialize reads any writer schema the registry knows and resolves it to the serde's (reader) schema, as Avro
 *   schema resolution says: fields added with a default appear with it, removed fields are skipped. The writer
 *   schema and its resolver are cached per id.
 * - Every way a record's bytes can be wrong throws its own AvroDecodeError, whose message names the case; the
 *   runtime dead-letters the record with that message. A registry that is down throws a retriable error instead,
 *   so the record is retried, not dead-lettered.
 */
import avro from 'avsc';
import type { Serde, SerdeContext } from '../runtime/serde.js';
import type { AvroSchemaInput, SchemaRegistryClient } from './registry-client.js';
import { DecimalType } from './decimal.js';
import {
  AvroDecodeError,
  AvroEncodeError,
  InvalidSchemaError,
  SchemaResolutionError,
  TrailingBytesError,
  TruncatedRecordError,
  WrongMagicByteError,
} from './errors.js';

export const MAGIC_BYTE = 0;
/** Magic byte and schema id. */
export const HEADER_BYTES = 5;

export interface AvroSerdeOptions {
  /** Subject of a topic's values; default TopicNameStrategy, `<topic>-value`. */
  subject?: (topic: string) => string;
  /**
   * On the first serialize to a topic, register the schema under its subject (default), or only look it up by
   * content (`false`: the schema must have been registered beforehand, e.g. by `registerSchemas`).
   */
  autoRegister?: boolean;
}

export interface AvroSerde<T> extends Serde<T> {
  serialize(value: T, ctx: SerdeContext): Promise<Buffer>;
  deserialize(data: Buffer, ctx: SerdeContext): Promise<T>;
  /** The reader (and writer) type. */
  readonly type: avro.Type;
  /** Resolve the schema id of a topic now rather than on its first record (e.g. at start-up). */
  prepare(topic: string): Promise<number>;
  /** Wire-format bytes of a value written with an explicit schema id (tests, tools). */
  encodeWithId(id: number, value: T): Buffer;
}

type Reading = { resolver: avro.Resolver | undefined } | { error: AvroDecodeError };

export function avroSerde<T>(client: SchemaRegistryClient, readerSchema: AvroSchemaInput, opts: AvroSerdeOptions = {}): AvroSerde<T> {
  const type = client.parse(readerSchema);
  const schemaText = client.schemaText(avro.Type.isType(readerSchema) ? type : readerSchema);
  const subjectOf = opts.subject ?? ((topic: string) => `${topic}-value`);
  const register = opts.autoRegister ?? true;
  const idByTopic = new Map<string, Promise<number>>();
  const readingById = new Map<number, Promise<Reading>>();

  const prepare = (topic: string): Promise<number> => {
    let p = idByTopic.get(topic);
    if (!p) {
      p = client.idOf(subjectOf(topic), schemaText, { register });
      idByTopic.set(topic, p);
      p.catch(() => idByTopic.delete(topic));
    }
    return p;
  };

  const encodeWithId = (id: number, value: T): Buffer => {
    let body: Buffer;
    try {
      body = type.toBuffer(value);
    } catch (err) {
      throw new AvroEncodeError(`value does not match schema ${type.name ?? type.typeName}: ${invalidPaths(type, value) || (err as Error).message}`, { cause: err });
    }
    const out = Buffer.allocUnsafe(HEADER_BYTES + body.length);
    out[0] = MAGIC_BYTE;
    out.writeInt32BE(id, 1);
    body.copy(out, HEADER_BYTES);
    return out;
  };

  /** How to read bytes written with schema `id`; a writer that does not resolve is remembered as such. */
  const readingFor = (id: number): Promise<Reading> => {
    let p = readingById.get(id);
    if (!p) {
      p = (async (): Promise<Reading> => {
        let writer: avro.Type;
        try {
          writer = (await client.schemaById(id)).type;
        } catch (err) {
          if (err instanceof InvalidSchemaError) return { error: new SchemaResolutionError(id, err.message) };
          throw err; // unknown id (not cached: it may be registered later) or registry down (retriable)
        }
        if (writer.equals(type) && sameLogicalTypes(writer, type)) return { resolver: undefined };
        const problem = resolutionProblem(type, writer, { reader: 'the reader schema', writer: `writer schema id ${id}` });
        if (problem !== undefined) return { error: new SchemaResolutionError(id, problem) };
        return { resolver: type.createResolver(writer) };
      })();
      readingById.set(id, p);
      p.catch(() => readingById.delete(id));
    }
    return p;
  };

  return {
    type,
    prepare,
    encodeWithId,

    async serialize(value: T, ctx: SerdeContext): Promise<Buffer> {
      const id = await prepare(ctx.topic);
      return encodeWithId(id, value);
    },

    async deserialize(data: Buffer, _ctx: SerdeContext): Promise<T> {
      if (data.length === 0) throw new TruncatedRecordError('too short: an empty value, where Confluent wire format needs at least 5 bytes (magic byte and schema id)');
      if (data[0] !== MAGIC_BYTE) throw new WrongMagicByteError(data[0]!);
      if (data.length < HEADER_BYTES) {
        throw new TruncatedRecordError(`too short: ${data.length} byte(s), where Confluent wire format needs at least 5 (magic byte and schema id)`);
      }
      const id = data.readInt32BE(1);
      const reading = await readingFor(id);
      if ('error' in reading) throw reading.error;
      let decoded: { value: unknown; offset: number };
      try {
        decoded = type.decode(data, HEADER_BYTES, reading.resolver);
      } catch (err) {
        throw new AvroDecodeError(`Avro body does not decode with writer schema id ${id}: ${(err as Error).message}`);
      }
      const bodyLength = data.length - HEADER_BYTES;
      if (decoded.offset < 0) {
        throw new TruncatedRecordError(`truncated Avro body: its ${bodyLength} byte(s) end before the record of writer schema id ${id} does`);
      }
      if (decoded.offset < data.length) throw new TrailingBytesError(id, data.length - decoded.offset, bodyLength);
      return decoded.value as T;
    },
  };
}

/**
 * Why data written with `writer` cannot be read with `reader` (Avro schema resolution), naming the field; undefined
 * when it can. The labels say whose schema is whose in the message.
 */
export function resolutionProblem(
  reader: avro.Type,
  writer: avro.Type,
  labels: { reader: string; writer: string } = { reader: 'the reader', writer: 'the writer' },
): string | undefined {
  try {
    reader.createResolver(writer);
    return undefined;
  } catch (err) {
    return explain(reader, writer, [], labels) ?? (err as Error).message;
  }
}

function resolves(reader: avro.Type, writer: avro.Type): boolean {
  try {
    reader.createResolver(writer);
    return true;
  } catch {
    return false;
  }
}

const is = (t: avro.Type, ...kinds: string[]) => avro.Type.isType(t, ...kinds);

/** Walks both schemas to the first place resolution fails, as avsc's createResolver does. */
function explain(reader: any, writer: any, path: string[], labels: { reader: string; writer: string }): string | undefined {
  const at = path.length === 0 ? 'the value' : `field '${path.join('.')}'`;
  if (!is(reader, 'union', 'logical') && is(writer, 'logical')) return explain(reader, writer.underlyingType, path, labels);
  if (is(writer, 'union')) {
    for (const branch of writer.types as avro.Type[]) {
      if (!resolves(reader, branch)) return explain(reader, branch, path, labels) ?? mismatch(at, reader, branch, labels);
    }
    return undefined;
  }
  if (is(reader, 'union')) {
    if ((reader.types as avro.Type[]).some((branch) => resolves(branch, writer))) return undefined;
    return `${at}: ${labels.writer} has ${describe(writer)}, which matches no branch of ${describe(reader)} in ${labels.reader}`;
  }
  if (is(reader, 'record', 'error') && is(writer, 'record', 'error')) {
    if (!nameMatches(reader, writer)) {
      return `${at}: ${labels.writer} is record ${writer.name}, which cannot be read as record ${reader.name} (the names differ and no alias matches)`;
    }
    for (const field of reader.fields as any[]) {
      const names = [field.name, ...(field.aliases ?? [])];
      const source = (writer.fields as any[]).find((w) => names.includes(w.name));
      const fieldPath = [...path, field.name];
      if (!source) {
        if (field.defaultValue() === undefined) {
          return `field '${fieldPath.join('.')}' has no default in ${labels.reader} and ${labels.writer} has no such field`;
        }
        continue;
      }
      if (!resolves(field.type, source.type)) {
        return explain(field.type, source.type, fieldPath, labels) ?? mismatch(`field '${fieldPath.join('.')}'`, field.type, source.type, labels);
      }
    }
    return undefined;
  }
  if (is(reader, 'array') && is(writer, 'array')) return explain(reader.itemsType, writer.itemsType, [...path, '[]'], labels);
  if (is(reader, 'map') && is(writer, 'map')) return explain(reader.valuesType, writer.valuesType, [...path, '{}'], labels);
  if (is(reader, 'enum') && is(writer, 'enum') && nameMatches(reader, writer)) {
    const missing = (writer.symbols as string[]).filter((s) => !reader.symbols.includes(s));
    if (missing.length > 0 && reader.default === undefined) {
      return `${at}: enum ${writer.name} of ${labels.writer} has symbol(s) ${missing.join(', ')} that ${labels.reader} lacks, and the reader's enum has no default`;
    }
  }
  if (resolves(reader, writer)) return undefined;
  return mismatch(at, reader, writer, labels);
}

function mismatch(at: string, reader: avro.Type, writer: avro.Type, labels: { reader: string; writer: string }): string {
  return `${at}: ${labels.writer} has ${describe(writer)}, which cannot be read as ${describe(reader)} (${labels.reader})`;
}

function nameMatches(reader: any, writer: any): boolean {
  if (!writer.name) return true;
  return [reader.name, ...(reader.aliases ?? [])].includes(writer.name);
}

/** A short human name of a type: `decimal(20, 4)`, `record weir.Payment`, `union [null, string]`. */
export function describe(t: any): string {
  if (t instanceof DecimalType) return t.describe();
  if (is(t, 'logical')) return `${describe(t.underlyingType)} (${String(t.typeName).replace('logical:', '')})`;
  if (is(t, 'union')) return `union [${(t.types as avro.Type[]).map(describe).join(', ')}]`;
  if (is(t, 'array')) return `array<${describe(t.itemsType)}>`;
  if (is(t, 'map')) return `map<${describe(t.valuesType)}>`;
  if (is(t, 'fixed')) return `fixed ${t.name} (${t.size} bytes)`;
  if (t.name) return `${t.typeName} ${t.name}`;
  const lt = (t as { schema(): unknown }).schema();
  return typeof lt === 'string' ? lt : t.typeName;
}

/** avsc's equals compares canonical forms, which drop logical types: a decimal of another scale would pass. */
function sameLogicalTypes(a: avro.Type, b: avro.Type): boolean {
  return JSON.stringify(a.schema({ exportAttrs: true })) === JSON.stringify(b.schema({ exportAttrs: true }));
}

/** "amount: 12n is not decimal(3, 2); currency: undefined is not string" for an invalid value, else ''. */
function invalidPaths(type: avro.Type, value: unknown): string {
  const problems: string[] = [];
  type.isValid(value, {
    errorHook: (path: string[], v: unknown, t: avro.Type) => {
      const where = path.length ? path.join('.') : 'the value';
      problems.push(
        t instanceof DecimalType && typeof v === 'bigint'
          ? `${where}: ${show(v)} has more than ${t.precision} digits for ${t.describe()} (the value is unscaled)`
          : `${where}: ${show(v)} is not ${describe(t)}`,
      );
    },
  });
  return problems.join('; ');
}

function show(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (v === undefined) return 'undefined (missing)';
  try {
    const s = JSON.stringify(v);
    return s.length > 60 ? `${s.slice(0, 57)}...` : s;
  } catch {
    return String(v);
  }
}
