/**
 * The sink contract: what a database sink does for the `SinkRunner`.
 * - `init()`: connect (client libraries load here, lazily) and run migrations;
 * - `add(record)`: take one decoded record into the pending batch of its topic-partition, converting it to what
 *   the database stores; a record that does not fit throws, naming itself, and is not taken;
 * - `takeBatch()`: hand the pending batches over (the runner keeps them until a flush of them succeeds);
 * - `flush(batch, offsets)`: write the batch AND move each topic-partition's next offset, atomically (Postgres:
 *   one transaction; Redis: one MULTI/EXEC). Each offset move is a compare-and-set: it applies only if the
 *   database still holds `expected`, so a zombie's stale batch is refused (`OffsetConflictError`); a batch whose
 *   offsets are already stored (a retry after a lost commit reply) returns `alreadyApplied`;
 * - `committedOffsets(tps)`: the next offsets stored in the database (null: never written);
 * - `destroy()`: close connections; idempotent.
 */

export interface TopicPartition {
  topic: string;
  partition: number;
}

/** `topic:partition`; Kafka topic names cannot contain ':'. */
export function tpKey(topic: string, partition: number): string {
  return `${topic}:${partition}`;
}

/**
 * The name a sink's database connections carry (Postgres application_name, Redis CLIENT SETNAME), so a connection
 * can be told apart and cut from outside: `weir-sink:<sink>`, cut to the 63 bytes Postgres keeps.
 */
export function sinkConnectionName(sink: string): string {
  return `weir-sink:${sink}`.slice(0, 63);
}

export interface SinkRecord<V = unknown> {
  topic: string;
  partition: number;
  offset: bigint;
  key: string | null;
  value: V;
  /** the record's Kafka timestamp, epoch ms */
  timestamp: number;
  headers: Record<string, Buffer | undefined>;
}

/** The converted records of one topic-partition, in offset order. */
export interface PartitionBatch<P> {
  topic: string;
  partition: number;
  items: P[];
}

export interface SinkBatch<P = unknown> {
  readonly partitions: ReadonlyArray<PartitionBatch<P>>;
  /** number of records in all partitions */
  readonly records: number;
}

/** Move a topic-partition's stored next offset from `expected` (null: none stored yet) to `next`. */
export interface OffsetAdvance {
  topic: string;
  partition: number;
  expected: bigint | null;
  next: bigint;
}

export interface FlushResult {
  /** rows or keys written (inserts that met an existing id count 0) */
  rows: number;
  /** the database already held every `next` offset: this batch had been applied (a retry after a lost reply) */
  alreadyApplied: boolean;
}

export interface Sink<P = unknown> {
  readonly name: string;
  /** records taken by `add` and not yet handed over by `takeBatch` */
  readonly pendingRecords: number;
  init(): Promise<void>;
  add(record: SinkRecord): void;
  takeBatch(): SinkBatch<P>;
  /** forget every pending record (after a rebalance or an offset conflict they are read again) */
  discardPending(): void;
  flush(batch: SinkBatch<P>, offsets: readonly OffsetAdvance[]): Promise<FlushResult>;
  committedOffsets(tps: readonly TopicPartition[]): Promise<Map<string, bigint | null>>;
  destroy(): Promise<void>;
}

/**
 * Keeps the per-topic-partition batches of a sink: `add` converts each record with `prepare` (the topic's
 * writer), `takeBatch` hands them over and starts new ones.
 */
export abstract class BatchingSink<P> implements Sink<P> {
  private pending = new Map<string, PartitionBatch<P>>();
  private count = 0;

  abstract readonly name: string;

  get pendingRecords(): number {
    return this.count;
  }

  /** Convert one record for the database; throw (a `RecordShapeError`) when it does not fit. */
  protected abstract prepare(record: SinkRecord): P;

  add(record: SinkRecord): void {
    const item = this.prepare(record);
    const key = tpKey(record.topic, record.partition);
    let batch = this.pending.get(key);
    if (!batch) {
      batch = { topic: record.topic, partition: record.partition, items: [] };
      this.pending.set(key, batch);
    }
    batch.items.push(item);
    this.count++;
  }

  takeBatch(): SinkBatch<P> {
    const batch: SinkBatch<P> = { partitions: [...this.pending.values()], records: this.count };
    this.discardPending();
    return batch;
  }

  discardPending(): void {
    this.pending = new Map();
    this.count = 0;
  }

  abstract init(): Promise<void>;
  abstract flush(batch: SinkBatch<P>, offsets: readonly OffsetAdvance[]): Promise<FlushResult>;
  abstract committedOffsets(tps: readonly TopicPartition[]): Promise<Map<string, bigint | null>>;
  abstract destroy(): Promise<void>;
}

/**
 * Compare what the database holds with what a flush expected, after its compare-and-set did not apply:
 * every offset already at `next` means the batch was applied before; anything else is a conflict.
 */
export function judgeStoredOffsets(
  offsets: readonly OffsetAdvance[],
  stored: ReadonlyMap<string, bigint | null>,
): { kind: 'already-applied' } | { kind: 'conflict'; mismatches: Array<OffsetAdvance & { stored: bigint | null }> } {
  const seen = offsets.map((o) => ({ ...o, stored: stored.get(tpKey(o.topic, o.partition)) ?? null }));
  if (seen.every((o) => o.stored === o.next)) return { kind: 'already-applied' };
  const moved = seen.filter((o) => o.stored !== o.expected);
  return { kind: 'conflict', mismatches: moved.length > 0 ? moved : seen.filter((o) => o.stored !== o.next) };
}

/**
 * A batch may only be written together with the offsets of every topic-partition it holds records of; anything
 * else would write data the database could not tell it had (a bug, refused before anything is written).
 */
export function uncoveredPartitions(batch: SinkBatch<unknown>, offsets: readonly OffsetAdvance[]): string[] {
  const covered = new Set(offsets.map((o) => tpKey(o.topic, o.partition)));
  return batch.partitions.filter((p) => p.items.length > 0 && !covered.has(tpKey(p.topic, p.partition))).map((p) => tpKey(p.topic, p.partition));
}
