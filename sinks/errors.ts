/**
 * Errors of the sinks, typed by what the caller does next:
 * - `SinkWriteError`: a database call failed; `retriable` says whether the same flush may succeed later
 *   (connection lost, server shutting down) or never will (constraint or data error: the sink stalls).
 * - `OffsetConflictError`: the database holds other offsets than the batch was read from (another member of the
 *   group, or a zombie, flushed first); drop the batch, re-read the offsets and seek there.
 * - `PoisonRecordError`: one record cannot be decoded or does not fit its table; its partition stalls, naming it.
 * - `RecordShapeError`: a decoded value lacks a field or has the wrong type (the cause of a `PoisonRecordError`).
 * - `BreakerOpenError`: the circuit breaker refuses calls until its cool-down ends; retry then.
 * - `RetriesExhaustedError` / `RetryAbortedError`: the retry helper gave up, with the last failure as `cause`.
 */
import { WeirError } from '../runtime/errors.js';

export class SinkError extends WeirError {}

export class SinkWriteError extends SinkError {
  constructor(
    readonly sink: string,
    message: string,
    opts: { cause?: unknown; retriable: boolean },
  ) {
    super(`sink '${sink}': ${message}`, opts);
  }
}

export interface OffsetMismatch {
  topic: string;
  partition: number;
  expected: bigint | null;
  stored: bigint | null;
}

export class OffsetConflictError extends SinkError {
  constructor(
    readonly sink: string,
    readonly mismatches: readonly OffsetMismatch[],
  ) {
    const list = mismatches
      .map((m) => `${m.topic}/${m.partition} (batch follows ${m.expected ?? 'none'}, database has ${m.stored ?? 'none'})`)
      .join(', ');
    super(`sink '${sink}': another consumer moved the offsets of ${list}; the batch is stale and is dropped`);
  }
}

export class PoisonRecordError extends SinkError {
  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly offset: bigint,
    reason: string,
    cause?: unknown,
  ) {
    super(
      `record ${topic}/${partition}@${offset} cannot be written: ${reason}${
        cause instanceof Error ? `: ${cause.message}` : ''
      }; partition ${topic}/${partition} is stalled until this is fixed`,
      { cause },
    );
  }
}

export class RecordShapeError extends SinkError {}

export class BreakerOpenError extends SinkError {
  constructor(readonly retryAfterMs: number) {
    super(`circuit breaker is open; next probe in ${retryAfterMs} ms`, { retriable: true });
  }
}

export class RetriesExhaustedError extends SinkError {
  constructor(
    readonly attempts: number,
    cause: unknown,
  ) {
    super(`gave up after ${attempts} attempts: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
      retriable: true,
    });
  }
}

export class RetryAbortedError extends SinkError {
  constructor(cause: unknown) {
    super(`retry aborted${cause instanceof Error ? ` (last failure: ${cause.message})` : ''}`, { cause });
  }
}
