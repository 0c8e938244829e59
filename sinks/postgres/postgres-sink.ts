/**
 * The Postgres sink: output records into tables, offsets into `sink_offsets`, in one transaction per flush.
 * Responsible for:
 * - creating the database if missing and migrating its schema (`init`);
 * - converting each record with its topic's table writer as it is added;
 * - the flush transaction, in numbered steps: 1. claim the offsets (compare-and-set, which also locks their rows
 *   until commit), 2. write each table with one batched statement, 3. commit; rollback and rethrow on any error;
 * - telling outages (connection lost, server shutting down: retriable) from errors that repeat (constraint, data).
 */
import type { ClientConfig, Pool, PoolClient, PoolConfig } from 'pg';
import { SinkWriteError, OffsetConflictError } from '../errors.js';
import {
  BatchingSink,
  judgeStoredOffsets,
  sinkConnectionName,
  tpKey,
  uncoveredPartitions,
  type FlushResult,
  type OffsetAdvance,
  type SinkBatch,
  type SinkRecord,
  type TopicPartition,
} from '../sink.js';
import { ensureDatabase, migrate } from './migrate.js';
import { quoteIdent, type PostgresTopicWriter, type Row } from './writers.js';

export interface PostgresSinkConfig {
  /** sink name: the consumer group and the `sink` column of `sink_offsets` */
  name: string;
  /** connection settings; default 127.0.0.1:5432, user postgres, database `weir` */
  connection?: PoolConfig;
  /** schema holding the tables (created and migrated by `init`); default `weir` */
  schema?: string;
  /** the table writer of each topic the sink reads */
  writers: Record<string, PostgresTopicWriter>;
  /** create the database in `init` when it is missing; default true */
  createDatabase?: boolean;
  /** connections kept; default 2 (one flushes at a time, one reads offsets) */
  poolSize?: number;
  log?: (msg: string) => void;
}

interface Item {
  topic: string;
  row: Row;
}

const RETRIABLE_SQLSTATE_CLASSES = new Set(['08', '40', '53', '57', '58']);
const RETRIABLE_SQLSTATES = new Set(['55P03', '55006']);
const PROGRAMMING_ERRORS = [TypeError, RangeError, ReferenceError, SyntaxError];

/** Whether a failed Postgres call may succeed if made again (an outage), or will fail the same way. */
export function isRetriablePgError(err: unknown): boolean {
  const e = err as { code?: unknown; severity?: unknown };
  if (typeof e?.code === 'string' && typeof e.severity === 'string') {
    return RETRIABLE_SQLSTATE_CLASSES.has(e.code.slice(0, 2)) || RETRIABLE_SQLSTATES.has(e.code);
  }
  // No SQLSTATE: the socket or the pool failed (refused, reset, terminated, connect timeout).
  return !PROGRAMMING_ERRORS.some((t) => err instanceof t);
}

export class PostgresSink extends BatchingSink<Item> {
  readonly name: string;
  readonly schema: string;
  private readonly connection: PoolConfig;
  private pool: Pool | null = null;
  private destroyed = false;
  private readonly offsetsTable: string;

  constructor(private readonly config: PostgresSinkConfig) {
    super();
    this.name = config.name;
    this.schema = config.schema ?? 'weir';
    this.connection = {
      host: '127.0.0.1',
      port: 5432,
      user: 'postgres',
      database: 'weir',
      application_name: sinkConnectionName(config.name),
      // A flush never waits forever: not on a lock, not on a statement, and the server ends a session of ours
      // left idle inside a transaction (its client vanished without closing the socket), releasing its locks.
      statement_timeout: 60_000,
      lock_timeout: 30_000,
      idle_in_transaction_session_timeout: 60_000,
      ...config.connection,
    };
    this.offsetsTable = `${quoteIdent(this.schema)}.sink_offsets`;
    if (Object.keys(config.writers).length === 0) throw new SinkWriteError(this.name, 'no topic writers given', { retriable: false });
  }

  async init(): Promise<void> {
    if (this.destroyed) throw new SinkWriteError(this.name, 'init after destroy', { retriable: false });
    if (this.pool) return;
    const clientConfig = this.connection as ClientConfig & { database: string };
    try {
      if (this.config.createDatabase ?? true) await ensureDatabase(clientConfig);
      await migrate(clientConfig, this.schema, this.config.log);
    } catch (err) {
      throw this.wrap('migrating the database failed', err);
    }
    const { default: pg } = await import('pg');
    const log = this.config.log;
    // A connection cut between two queries (or after its query failed, or while it connects) is reported as an
    // 'error' event on the client, which the pool listens to only while the client is idle: unheard, it would crash
    // the process. Every client gets a listener from birth; the failure itself reaches the caller through its query.
    class SinkClient extends pg.Client {
      constructor(config?: ClientConfig) {
        super(config);
        this.on('error', (err) => log?.(`connection lost: ${err.message}`));
      }
    }
    const pool = new pg.Pool({ max: this.config.poolSize ?? 2, connectionTimeoutMillis: 5000, ...this.connection, Client: SinkClient });
    // An idle connection killed by the server is reported here; the pool drops it and the next call reconnects.
    pool.on('error', (err) => this.config.log?.(`idle connection lost: ${err.message}`));
    this.pool = pool;
  }

  protected prepare(record: SinkRecord): Item {
    const writer = this.config.writers[record.topic];
    if (!writer) throw new SinkWriteError(this.name, `no table writer for topic ${record.topic}`, { retriable: false });
    return { topic: record.topic, row: writer.toRow(record) };
  }

  async flush(batch: SinkBatch<Item>, offsets: readonly OffsetAdvance[]): Promise<FlushResult> {
    const uncovered = uncoveredPartitions(batch, offsets);
    if (uncovered.length > 0) {
      throw new SinkWriteError(this.name, `refusing to write records of ${uncovered.join(', ')} without their offsets`, { retriable: false });
    }
    const client = await this.connect();
    let failed: unknown;
    try {
      await client.query('BEGIN');
      // 1. claim the offsets: applies only where the database still holds what this batch was read after
      const claimed = await this.claimOffsets(client, offsets);
      if (claimed < offsets.length) {
        await client.query('ROLLBACK');
        const stored = await this.readOffsets(client, offsets);
        const verdict = judgeStoredOffsets(offsets, stored);
        if (verdict.kind === 'already-applied') return { rows: 0, alreadyApplied: true };
        throw new OffsetConflictError(this.name, verdict.mismatches);
      }
      // 2. the tables, one statement each
      let rows = 0;
      for (const [topic, topicRows] of groupByTopic(batch)) {
        rows += await this.config.writers[topic]!.write(client, this.schema, topicRows);
      }
      // 3. commit: data and offsets land together or not at all
      await client.query('COMMIT');
      return { rows, alreadyApplied: false };
    } catch (err) {
      failed = err;
      await client.query('ROLLBACK').catch(() => undefined);
      if (err instanceof OffsetConflictError) throw err;
      throw this.wrap('flush failed', err);
    } finally {
      // after any failure the connection may be broken or mid-transaction: drop it rather than reuse it
      client.release(failed === undefined ? undefined : true);
    }
  }

  async committedOffsets(tps: readonly TopicPartition[]): Promise<Map<string, bigint | null>> {
    const client = await this.connect();
    let failed = false;
    try {
      return await this.readOffsets(client, tps);
    } catch (err) {
      failed = true;
      throw this.wrap('reading offsets failed', err);
    } finally {
      client.release(failed || undefined);
    }
  }

  async destroy(): Promise<void> {
    this.destroyed = true;
    const pool = this.pool;
    this.pool = null;
    if (pool) await pool.end().catch(() => undefined);
  }

  private async connect(): Promise<PoolClient> {
    if (!this.pool) throw new SinkWriteError(this.name, 'not initialised (call init first) or destroyed', { retriable: false });
    try {
      return await this.pool.connect();
    } catch (err) {
      throw this.wrap('cannot connect', err);
    }
  }

  /** Returns how many of `offsets` were moved; each UPDATE/INSERT holds its row lock until the transaction ends. */
  private async claimOffsets(client: PoolClient, offsets: readonly OffsetAdvance[]): Promise<number> {
    if (offsets.length === 0) return 0;
    const res = await client.query<{ claimed: string }>(
      `WITH wanted AS (
         SELECT * FROM unnest($2::text[], $3::integer[], $4::bigint[], $5::bigint[]) AS w(topic, "partition", expected, next)
       ), updated AS (
         UPDATE ${this.offsetsTable} o SET next_offset = w.next, updated_at = now()
           FROM wanted w
          WHERE o.sink = $1 AND o.topic = w.topic AND o."partition" = w."partition" AND o.next_offset = w.expected
         RETURNING 1
       ), inserted AS (
         INSERT INTO ${this.offsetsTable} (sink, topic, "partition", next_offset)
         SELECT $1, w.topic, w."partition", w.next FROM wanted w WHERE w.expected IS NULL
         ON CONFLICT (sink, topic, "partition") DO NOTHING
         RETURNING 1
       )
       SELECT (SELECT count(*) FROM updated) + (SELECT count(*) FROM inserted) AS claimed`,
      [
        this.name,
        offsets.map((o) => o.topic),
        offsets.map((o) => o.partition),
        offsets.map((o) => (o.expected === null ? null : o.expected.toString())),
        offsets.map((o) => o.next.toString()),
      ],
    );
    return Number(res.rows[0]?.claimed ?? 0);
  }

  private async readOffsets(client: PoolClient, tps: readonly TopicPartition[]): Promise<Map<string, bigint | null>> {
    const result = new Map<string, bigint | null>(tps.map((tp) => [tpKey(tp.topic, tp.partition), null]));
    if (tps.length === 0) return result;
    const res = await client.query<{ topic: string; partition: number; next_offset: string }>(
      `SELECT o.topic, o."partition", o.next_offset
         FROM ${this.offsetsTable} o
         JOIN unnest($2::text[], $3::integer[]) AS w(topic, "partition") ON o.topic = w.topic AND o."partition" = w."partition"
        WHERE o.sink = $1`,
      [this.name, tps.map((t) => t.topic), tps.map((t) => t.partition)],
    );
    for (const r of res.rows) result.set(tpKey(r.topic, r.partition), BigInt(r.next_offset));
    return result;
  }

  private wrap(what: string, err: unknown): unknown {
    if (err instanceof SinkWriteError || PROGRAMMING_ERRORS.some((t) => err instanceof t)) return err;
    const code = (err as { code?: unknown }).code;
    const message = `${what}: ${err instanceof Error ? err.message : String(err)}${typeof code === 'string' ? ` (${code})` : ''}`;
    return new SinkWriteError(this.name, message, { cause: err, retriable: isRetriablePgError(err) });
  }
}

function groupByTopic(batch: SinkBatch<Item>): Map<string, Row[]> {
  const out = new Map<string, Row[]>();
  for (const p of batch.partitions) {
    let rows = out.get(p.topic);
    if (!rows) out.set(p.topic, (rows = []));
    for (const item of p.items) rows.push(item.row);
  }
  return out;
}
