/**
 * Section `sinks`: rows/s into Postgres and write operations/s into Redis, each sink in its own process
 * (bench/sink-worker.ts) draining N pre-produced output-contract records, Avro-encoded as the applications write
 * them (bench/inputs.ts), produced without transactions:
 *   Postgres: positions (1/3, latest wins per account|instrument) and ledger-entries (2/3, insert-only);
 *   Redis:    the same positions (HSET) and as many routing-decisions (SET) as ledger entries.
 * Positions cycle through 50,000 keys, so a flush of the default 1,000 records rarely collapses two of one key
 * and rows ≈ records. The Postgres tables live in a bench-owned schema and the Redis keys under a bench-owned
 * prefix; both are removed at the end (unless --keep).
 */
import pg from 'pg';
import { Redis } from 'ioredis';
import { deleteUnder } from '../sinks/redis/keys.js';
import { mulberry32 } from '../cli/generators/random.js';
import { INSTRUMENTS as TRADED } from '../cli/generators/trades.js';
import type { LedgerEntry, Position, RoutingDecision } from '../schemas/types.js';
import { dropSchema } from '../sinks/postgres/migrate.js';
import { createTopics, formatTable, int, log, removeOwned, round } from './common.js';
import { topicNames, type Aim, type BenchContext, type SectionReport } from './context.js';
import { produceRecords, type CatalogRecord } from './inputs.js';
import { startChild } from './spawn.js';
import type { SinkWorkerResult, SinkWorkerSpec } from './sink-worker.js';

export const POSTGRES_AIM = 20_000;
const POSITION_KEYS = 50_000;
/** the first ten instruments of the trades generator's book, with their currencies */
const INSTRUMENTS = TRADED.slice(0, 10);
const T0 = Date.UTC(2025, 0, 2, 9, 30);

/** Output records as the trades and routing applications emit them; money as scaled bigints. */
function* outputRecords(positions: number, ledgerEntries: number, decisions: number, seed: number): Generator<CatalogRecord> {
  const rnd = mulberry32(seed);
  const n = Math.max(positions, ledgerEntries, decisions);
  for (let i = 0; i < n; i++) {
    const k = i % POSITION_KEYS;
    const accountId = `ACC-${Math.floor(k / INSTRUMENTS.length)}`;
    const { instrument, currency } = INSTRUMENTS[k % INSTRUMENTS.length]!;
    const quantity = BigInt(1 + Math.floor(rnd() * 100_000)); // whole units
    const price = BigInt(1_000_000 + Math.floor(rnd() * 500_000_000)); // scale 6
    const tradeId = `T-${i}`;
    if (i < positions) {
      const value: Position = {
        accountId,
        instrument,
        quantity: quantity * 10_000n, // scale 4
        costBasis: quantity * price * 10_000n, // scale 10
        averageCost: price, // costBasis / quantity, scale 6
        realisedPnl: BigInt(Math.floor(rnd() * 2_000_000) - 1_000_000) * 10_000_000_000n,
        currency,
        openLots: 1 + (i % 4),
        liveTrades: 1 + (i % 9),
        lastTradeId: tradeId,
        lastTradeVersion: 1,
        updatedAt: T0 + i,
      };
      yield { topic: 'positions', key: `${accountId}|${instrument}`, value };
    }
    if (i < ledgerEntries) {
      const leg = i % 2 === 0 ? 'securities' : 'cash';
      const value: LedgerEntry = {
        entryId: `${tradeId}:1:${leg}`,
        accountId,
        tradeId,
        tradeVersion: 1,
        ledgerAccount: leg === 'securities' ? `securities:${accountId}:${instrument}` : `cash:${accountId}:${currency}`,
        side: i % 4 < 2 ? 'DEBIT' : 'CREDIT',
        amount: quantity * price * 10_000n,
        currency,
        reverses: null,
        postedAt: T0 + i,
      };
      yield { topic: 'ledger-entries', key: accountId, value };
    }
    if (i < decisions) {
      const requestedAt = T0 + i * 10;
      const waitMs = Math.floor(rnd() * 5_000);
      const value: RoutingDecision = {
        tenantId: `tenant-${i % 40}`,
        conversationId: `conv-${i}`,
        agentId: `agent-${Math.floor(rnd() * 200)}`,
        skill: ['billing', 'sales', 'support', 'tech'][i % 4]!,
        priority: i % 5,
        requestedAt,
        assignedAt: requestedAt + waitMs,
        waitMs,
        queued: waitMs > 0,
        reason: 'LEAST_LOADED',
      };
      yield { topic: 'routing-decisions', key: value.tenantId, value };
    }
  }
}

interface SinkResult extends SinkWorkerResult {
  sink: 'postgres' | 'redis';
  reads: string;
}

async function removeRedisKeys(prefix: string): Promise<void> {
  const redis = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    await deleteUnder(redis, prefix);
  } finally {
    redis.disconnect();
  }
}

async function removeSchema(schema: string): Promise<void> {
  const c = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'weir' });
  await c.connect();
  try {
    await dropSchema(c, schema);
  } finally {
    await c.end();
  }
}

export async function sinksSection(ctx: BenchContext): Promise<SectionReport> {
  const prefix = `${ctx.run}-sink`;
  const names = topicNames(prefix, [{ topic: 'positions' }, { topic: 'ledger-entries' }, { topic: 'routing-decisions' }]);
  const schema = prefix.replace(/-/g, '_');
  const events = ctx.opts.events;
  const positions = Math.ceil(events / 3);
  const others = events - positions;
  const results: SinkResult[] = [];
  try {
    await createTopics(ctx.admin, Object.values(names), ctx.opts.partitions);
    const t0 = performance.now();
    const n = await produceRecords(ctx, outputRecords(positions, others, others, ctx.opts.seed), names);
    log(`sinks: produced ${int(n)} output records in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const reading = (topics: string[]) => Object.fromEntries(topics.map((t) => [names[t]!, t]));
    const runs: Array<{ sink: 'postgres' | 'redis'; spec: SinkWorkerSpec }> = [
      {
        sink: 'postgres',
        spec: { kind: 'postgres', name: `${prefix}-pg`, brokers: ctx.brokers, registryUrl: ctx.registryUrl!, topics: reading(['positions', 'ledger-entries']), schema, timeoutMs: ctx.opts.timeoutMs },
      },
      {
        sink: 'redis',
        spec: { kind: 'redis', name: `${prefix}-redis`, brokers: ctx.brokers, registryUrl: ctx.registryUrl!, topics: reading(['positions', 'routing-decisions']), prefix, timeoutMs: ctx.opts.timeoutMs },
      },
    ];
    for (const { sink, spec } of runs) {
      log(`sinks: draining ${int(events)} records into ${sink}...`);
      const r = await startChild<SinkWorkerResult>('sink-worker.ts', spec, spec.name).result;
      log(`sinks: ${sink} ${r.seconds.toFixed(2)} s, ${int(r.rows / r.seconds)} rows/s`);
      results.push({ ...r, sink, reads: Object.values(spec.topics).join(' + ') });
    }
  } finally {
    if (!ctx.opts.keep) {
      await removeSchema(schema).catch((e: Error) => log(`could not drop schema ${schema}: ${e.message}`));
      await removeRedisKeys(prefix).catch((e: Error) => log(`could not delete Redis keys ${prefix}:*: ${e.message}`));
      await removeOwned(ctx.admin, `${prefix}-`, ctx.registry);
    }
  }
  const head = ['sink', 'reads', 'records', 'seconds', 'records/s', 'rows or ops', 'rows/s or ops/s', 'startup s', 'peak RSS MB', 'CPU'];
  const body = results.map((r) => [
    r.sink,
    r.reads,
    int(r.records),
    r.seconds.toFixed(2),
    int(r.records / r.seconds),
    int(r.rows),
    int(r.rows / r.seconds),
    r.startupSeconds.toFixed(2),
    r.peakRssMb.toFixed(0),
    `${Math.round((100 * r.cpuSeconds) / r.seconds)}%`,
  ]);
  const pgResult = results.find((r) => r.sink === 'postgres');
  const aims: Aim[] = pgResult ? [{ what: 'Postgres sink', measured: pgResult.rows / pgResult.seconds, target: POSTGRES_AIM, unit: 'rows/s', cmp: '>=' }] : [];
  const text = [
    `sinks: each sink drains ${int(events)} pre-produced Avro output records (positions 1/3; ledger-entries resp. routing-decisions 2/3), default`,
    'batching (1,000 records / 250 ms). Time = start() until the sink stored the end offset of every partition. Postgres rows = rows inserted',
    'or updated as Postgres reports them; Redis ops = HSET/SET commands (offsets hash writes not counted).',
    '',
    formatTable(head, body),
  ].join('\n');
  const json = results.map((r) => ({
    sink: r.sink,
    reads: r.reads,
    records: r.records,
    rows: r.rows,
    seconds: round(r.seconds, 3),
    recordsPerSecond: Math.round(r.records / r.seconds),
    rowsPerSecond: Math.round(r.rows / r.seconds),
    startupSeconds: round(r.startupSeconds, 3),
    peakRssMb: round(r.peakRssMb, 1),
    cpuSeconds: round(r.cpuSeconds, 2),
  }));
  return { section: 'sinks', text, json, aims };
}
