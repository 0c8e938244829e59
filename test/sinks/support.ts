/**
 * Shared helpers of the sink tests: transactional producing, end offsets, the per-test Postgres schema and Redis
 * prefix, and waiting until a sink has stored the end offset of every partition.
 */
import pg from 'pg';
import { Redis } from 'ioredis';
import { deleteUnder } from '../../sinks/redis/keys.js';
import { partitionForKey } from '../../runtime/partitioner.js';
import { Serdes } from '../../runtime/serde.js';
import { ensureDatabase } from '../../sinks/postgres/migrate.js';
import { quoteIdent } from '../../sinks/postgres/writers.js';
import type { Keyed } from '../fixtures/sink-data.js';
import { kafka, unique, waitFor, withAdmin } from '../helpers/kafka.js';

export const PG = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'weir' };

const json = Serdes.json<unknown>();

export interface TopicRecords {
  topic: string;
  partitions: number;
  records: ReadonlyArray<Keyed<unknown>>;
}

/**
 * Produce with a transactional producer, `perTransaction` records of each topic per transaction (all topics
 * interleaved). `abort: true` aborts every transaction instead of committing it.
 */
export async function produceTransactional(
  inputs: readonly TopicRecords[],
  opts: { perTransaction?: number; abort?: boolean; pauseMs?: number } = {},
): Promise<void> {
  const producer = kafka().producer({
    transactionalId: unique('weir-sink-test'),
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  try {
    const per = opts.perTransaction ?? 500;
    const longest = Math.max(...inputs.map((i) => i.records.length));
    for (let from = 0; from < longest; from += per) {
      const tx = await producer.transaction();
      try {
        await tx.sendBatch({
          acks: -1,
          topicMessages: inputs
            .map((input) => ({
              topic: input.topic,
              messages: input.records.slice(from, from + per).map((r) => ({
                key: r.key,
                value: json.serialize(r.value),
                partition: partitionForKey(Buffer.from(r.key), input.partitions),
              })),
            }))
            .filter((t) => t.messages.length > 0),
        });
      } catch (err) {
        await tx.abort().catch(() => undefined);
        throw err;
      }
      if (opts.abort) await tx.abort();
      else await tx.commit();
      if (opts.pauseMs) await new Promise((r) => setTimeout(r, opts.pauseMs));
    }
  } finally {
    await producer.disconnect();
  }
}

/** End offset (high watermark) of every partition: `topic:partition` → offset. */
export async function endOffsets(topics: readonly string[]): Promise<Map<string, bigint>> {
  return withAdmin(async (admin) => {
    const out = new Map<string, bigint>();
    for (const topic of topics) for (const o of await admin.fetchTopicOffsets(topic)) out.set(`${topic}:${o.partition}`, BigInt(o.high));
    return out;
  });
}

export async function waitUntilStored(
  what: string,
  topics: readonly string[],
  stored: () => Promise<Map<string, bigint>>,
  timeoutMs = 90_000,
): Promise<void> {
  const ends = await endOffsets(topics);
  await waitFor(
    what,
    async () => {
      const s = await stored().catch(() => new Map<string, bigint>());
      return [...ends].every(([k, end]) => (s.get(k) ?? -1n) >= end);
    },
    timeoutMs,
    200,
  );
}

// ---- Postgres ----------------------------------------------------------------------------------------------

export async function pgClient(): Promise<pg.Client> {
  await ensureDatabase(PG);
  const c = new pg.Client({ ...PG, application_name: 'weir-sink-test-control' });
  c.on('error', (err) => console.error(`sink test control connection: ${err.message}`));
  await c.connect();
  return c;
}

export function freshSchema(label: string): string {
  return unique(`sinktest_${label}`).replace(/-/g, '_');
}

export async function dropSchema(c: pg.Client, schema: string): Promise<void> {
  await c.query(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`);
}

export async function pgStoredOffsets(c: pg.Client, schema: string, sink: string): Promise<Map<string, bigint>> {
  const res = await c.query<{ topic: string; partition: number; next_offset: string }>(
    `SELECT topic, "partition", next_offset FROM ${quoteIdent(schema)}.sink_offsets WHERE sink = $1`,
    [sink],
  );
  return new Map(res.rows.map((r) => [`${r.topic}:${r.partition}`, BigInt(r.next_offset)]));
}

/** Terminate the sink's connections (by application_name); returns how many were cut. */
export async function terminateSinkConnections(c: pg.Client, sink: string): Promise<number> {
  const res = await c.query(
    `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE datname = $1 AND application_name = $2 AND pid <> pg_backend_pid()`,
    [PG.database, `weir-sink:${sink}`],
  );
  return res.rowCount ?? 0;
}

// ---- Redis -------------------------------------------------------------------------------------------------

export function redisClient(): Redis {
  return new Redis({ host: '127.0.0.1', port: 6379, connectionName: 'weir-sink-test-control' });
}

export async function redisStoredOffsets(r: Redis, prefix: string, sink: string): Promise<Map<string, bigint>> {
  const all = await r.hgetall(`${prefix}:offsets:${sink}`);
  return new Map(Object.entries(all).map(([k, v]) => [k, BigInt(v)]));
}

/** CLIENT KILL ID every connection named `weir-sink:<sink>`; returns how many were cut. */
export async function killSinkConnections(r: Redis, sink: string): Promise<number> {
  const list = (await r.client('LIST')) as string;
  const ids = list
    .split('\n')
    .filter((line) => new RegExp(`(^| )name=weir-sink:${sink}( |$)`).test(line))
    .map((line) => /(?:^| )id=(\d+)/.exec(line)?.[1])
    .filter((id): id is string => id !== undefined);
  let n = 0;
  for (const id of ids) n += Number(await r.client('KILL', 'ID', id).catch(() => 0));
  return n;
}

/** Delete every key `<prefix>:*`. */
export { deleteUnder as deleteKeys };
