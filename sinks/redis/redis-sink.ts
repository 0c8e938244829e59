/**
 * The Redis sink: output records into keys, offsets into the hash `<prefix>:offsets:<sink>` (field
 * `<topic>:<partition>`), in one MULTI/EXEC per flush.
 * Responsible for:
 * - the flush, in numbered steps: 1. WATCH the offsets hash and read the batch's fields, 2. refuse a stale batch
 *   (the stored offsets are not the ones it was read after: a zombie or another member flushed first), 3. queue
 *   the writes and the new offsets in one MULTI and EXEC it; EXEC answers nil when any flush touched the offsets
 *   hash since the WATCH, and the check is made again;
 * - keeping that guard sound across reconnects: its connection neither queues commands while disconnected nor
 *   resends them after a reconnect (a resent EXEC would run without its WATCH), and a flush whose connection
 *   changed between WATCH and EXEC is retried from the start;
 * - telling outages (connection lost, LOADING, BUSY …: retriable) from errors that repeat.
 * Why WATCH and not a Lua script: the writers stay ordinary ioredis commands (any command, typed), the check is on
 * the one key every flush writes, and MULTI/EXEC is what the design names. The price is an extra round trip and
 * optimistic retries when several sink instances flush at once.
 */
import type { ChainableCommander, Redis, RedisOptions } from 'ioredis';
import { OffsetConflictError, SinkWriteError } from '../errors.js';
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
import { redisKeys, type RedisTopicWriter } from './writers.js';

export interface RedisSinkConfig {
  /** sink name: the consumer group and the offsets hash `<prefix>:offsets:<name>` */
  name: string;
  /** key prefix of everything the sink writes */
  prefix: string;
  /** the key writer of each topic the sink reads */
  writers: Record<string, RedisTopicWriter<any>>;
  /** connection settings; default 127.0.0.1:6379 */
  redis?: RedisOptions;
  /** CLIENT SETNAME of the sink's connection; default `sinkConnectionName(name)` (`weir-sink:<name>`) */
  connectionName?: string;
  log?: (msg: string) => void;
}

interface Item {
  topic: string;
  write: unknown;
}

const RETRIABLE_REPLIES = /^(LOADING|BUSY|TRYAGAIN|MASTERDOWN|CLUSTERDOWN|READONLY|OOM|NOREPLICAS)\b/;
const PROGRAMMING_ERRORS = [TypeError, RangeError, ReferenceError, SyntaxError];
/** EXEC answered nil this many times in a row (others kept flushing): give up this attempt, the retry goes on */
const MAX_WATCH_ROUNDS = 50;

export function isRetriableRedisError(err: unknown): boolean {
  if (PROGRAMMING_ERRORS.some((t) => err instanceof t)) return false;
  if ((err as { name?: unknown }).name === 'ReplyError') return RETRIABLE_REPLIES.test((err as Error).message);
  return true; // connection closed or refused, stream not writeable, timeouts
}

export class RedisSink extends BatchingSink<Item> {
  readonly name: string;
  readonly offsetsKey: string;
  readonly connectionName: string;
  private client: Redis | null = null;
  /** bumped on every connect and disconnect, so a flush can see that its WATCH did not survive */
  private epoch = 0;
  private destroyed = false;

  constructor(private readonly config: RedisSinkConfig) {
    super();
    this.name = config.name;
    this.offsetsKey = redisKeys.offsets(config.prefix, config.name);
    this.connectionName = config.connectionName ?? sinkConnectionName(config.name);
    if (Object.keys(config.writers).length === 0) throw new SinkWriteError(this.name, 'no topic writers given', { retriable: false });
  }

  async init(): Promise<void> {
    if (this.destroyed) throw new SinkWriteError(this.name, 'init after destroy', { retriable: false });
    if (this.client) return;
    const { Redis } = await import('ioredis');
    const client = new Redis({
      host: '127.0.0.1',
      port: 6379,
      retryStrategy: (times) => Math.min(50 * times, 1000),
      ...this.config.redis,
      connectionName: this.connectionName,
      lazyConnect: true,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
    });
    client.on('ready', () => this.epoch++);
    client.on('close', () => this.epoch++);
    client.on('error', (err: Error) => this.config.log?.(`redis connection: ${err.message}`));
    try {
      await client.connect();
    } catch (err) {
      client.disconnect();
      throw this.wrap('cannot connect', err);
    }
    this.client = client;
  }

  protected prepare(record: SinkRecord): Item {
    const writer = this.config.writers[record.topic];
    if (!writer) throw new SinkWriteError(this.name, `no key writer for topic ${record.topic}`, { retriable: false });
    return { topic: record.topic, write: writer.prepare(record, this.config.prefix) };
  }

  async flush(batch: SinkBatch<Item>, offsets: readonly OffsetAdvance[]): Promise<FlushResult> {
    const uncovered = uncoveredPartitions(batch, offsets);
    if (uncovered.length > 0) {
      throw new SinkWriteError(this.name, `refusing to write records of ${uncovered.join(', ')} without their offsets`, { retriable: false });
    }
    const client = this.ready();
    const fields = offsets.map((o) => tpKey(o.topic, o.partition));
    try {
      for (let round = 0; round < MAX_WATCH_ROUNDS; round++) {
        const epoch = this.epoch;
        // 1. watch the offsets and read them
        const [, stored] = await Promise.all([
          client.watch(this.offsetsKey),
          fields.length > 0 ? client.hmget(this.offsetsKey, ...fields) : Promise.resolve([] as Array<string | null>),
        ]);
        // 2. the batch must follow exactly what is stored
        if (!offsets.every((o, i) => (stored[i] ?? null) === (o.expected === null ? null : o.expected.toString()))) {
          await client.unwatch();
          const verdict = judgeStoredOffsets(offsets, toOffsetMap(fields, stored));
          if (verdict.kind === 'already-applied') return { rows: 0, alreadyApplied: true };
          throw new OffsetConflictError(this.name, verdict.mismatches);
        }
        if (epoch !== this.epoch || client.status !== 'ready') {
          throw new SinkWriteError(this.name, 'the connection was re-established during the flush', { retriable: true });
        }
        // 3. writes and offsets in one transaction, sent in this same tick on the watched connection
        const tx = client.multi();
        let rows = 0;
        for (const [topic, items] of groupByTopic(batch)) rows += this.config.writers[topic]!.write(tx, items);
        if (offsets.length > 0) tx.hset(this.offsetsKey, Object.fromEntries(offsets.map((o, i) => [fields[i]!, o.next.toString()])));
        const replies = await tx.exec();
        if (replies === null) continue; // another flush moved the offsets since WATCH: check again
        const failed = replies.find(([err]) => err);
        if (failed) {
          // Redis ran the other commands of the transaction anyway: this is a bug to fix, not an outage
          throw new SinkWriteError(this.name, `a command of the flush failed: ${(failed[0] as Error).message}`, {
            cause: failed[0],
            retriable: false,
          });
        }
        return { rows, alreadyApplied: false };
      }
      throw new SinkWriteError(this.name, `offsets kept changing under ${MAX_WATCH_ROUNDS} flushes in a row`, { retriable: true });
    } catch (err) {
      if (err instanceof OffsetConflictError) throw err;
      throw this.wrap('flush failed', err);
    }
  }

  async committedOffsets(tps: readonly TopicPartition[]): Promise<Map<string, bigint | null>> {
    const client = this.ready();
    const fields = tps.map((tp) => tpKey(tp.topic, tp.partition));
    if (fields.length === 0) return new Map();
    try {
      return toOffsetMap(fields, await client.hmget(this.offsetsKey, ...fields));
    } catch (err) {
      throw this.wrap('reading offsets failed', err);
    }
  }

  async destroy(): Promise<void> {
    this.destroyed = true;
    const client = this.client;
    this.client = null;
    if (!client) return;
    await client.quit().catch(() => client.disconnect());
  }

  private ready(): Redis {
    if (!this.client) throw new SinkWriteError(this.name, 'not initialised (call init first) or destroyed', { retriable: false });
    return this.client;
  }

  private wrap(what: string, err: unknown): unknown {
    if (err instanceof SinkWriteError || PROGRAMMING_ERRORS.some((t) => err instanceof t)) return err;
    return new SinkWriteError(this.name, `${what}: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
      retriable: isRetriableRedisError(err),
    });
  }
}

function toOffsetMap(fields: readonly string[], values: ReadonlyArray<string | null>): Map<string, bigint | null> {
  return new Map(fields.map((f, i) => [f, values[i] == null ? null : BigInt(values[i]!)]));
}

function groupByTopic(batch: SinkBatch<Item>): Map<string, unknown[]> {
  const out = new Map<string, unknown[]>();
  for (const p of batch.partitions) {
    let items = out.get(p.topic);
    if (!items) out.set(p.topic, (items = []));
    for (const item of p.items) items.push(item.write);
  }
  return out;
}

