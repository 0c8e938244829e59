/**
 * A database outage under a running application: the trades worker on the real broker (exactly-once, RocksDB stores)
 * with its Postgres and Redis sinks (SinkRunner), which reach their databases through TCP proxies (support.ts,
 * OutageProxy): taking a proxy down is an outage only these sinks see, so the databases stay up for everyone else.
 * One database is away for several seconds, then the other, while trades keep arriving. Meanwhile the sink of the
 * missing database reports itself stalled behind an open breaker, keeps trying with backoff and writes nothing; the
 * other sink goes on; the worker goes on: its committed input offsets and its output topics keep growing. Once the
 * database is back the sink catches up, and the tables and keys end equal to the output topics, which equal a
 * recomputation from the trade events: no row twice, none missing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type pg from 'pg';
import type { Redis } from 'ioredis';
import type { Admin, Producer } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { renameTopics } from '../../bench/rename-topics.js';
import { finalLiveSets, modelPosition, expectedLedgerEntries, type ModelPosition } from '../../cli/demo/recompute/trades.js';
import { Worker } from '../../runtime/worker.js';
import { Serdes, type Serde } from '../../runtime/serde.js';
import { formatDecimal } from '../../schemas/decimal.js';
import { Scale, type LedgerEntry, type Position } from '../../schemas/types.js';
import { PostgresSink } from '../../sinks/postgres/postgres-sink.js';
import { postgresWriters } from '../../sinks/postgres/writers.js';
import { RedisSink } from '../../sinks/redis/redis-sink.js';
import { redisWriters } from '../../sinks/redis/writers.js';
import { SinkRunner } from '../../sinks/sink-runner.js';
import { tradesTopology, TradesTopics } from '../../topologies/trades.js';
import { entryKey, type ledgerEntries, type positions } from '../fixtures/sink-data.js';
import { tradesSerdes } from '../fixtures/trades-driver.js';
import { generateTrades } from '../fixtures/trades-generator.js';
import { brokers, drained, kafka, produce, readAll, unique, waitFor, withAdmin } from '../helpers/kafka.js';
import { expectTablesExact } from './postgres-check.js';
import {
  deleteKeys,
  dropSchema,
  expectRedisKeysExact,
  freshSchema,
  PG,
  pgClient,
  pgStoredOffsets,
  recordHistory,
  REDIS,
  redisClient,
  redisStoredOffsets,
  waitUntilStored,
} from './support.js';
import { OutageProxy } from '../helpers/tcp-proxy.js';

const PARTITIONS = 3;
/** how long each database stays away once its sink has reported the outage */
const OUTAGE_MS = 6000;
/** trades sent every FEED_EVERY_MS while a database is away */
const FEED_PER_TICK = 30;
const FEED_EVERY_MS = 200;

const stateDir = mkdtempSync(path.join(os.tmpdir(), 'weir-outage-'));
const cleanups: Array<() => Promise<unknown>> = [];

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  rmSync(stateDir, { recursive: true, force: true });
}, 60_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sum = (m: Map<string, bigint>) => [...m.values()].reduce((a, b) => a + b, 0n);

interface Sample {
  /** the worker's committed input offsets, all partitions */
  input: number;
  /** end offsets of its output topics, all partitions */
  output: number;
  /** offsets stored by the sink whose database is up */
  other: bigint;
}

describe('a database outage while the trades application runs (real Kafka, Postgres, Redis)', () => {
  it('stalls only the sink of the missing database, behind an open breaker; processing goes on; the tables and keys end exact', async () => {
    const topics = { trades: unique('outage-trades'), positions: unique('outage-positions'), ledger: unique('outage-ledger') };
    // the generated event times (January 2025) are the records' timestamps: these topics keep everything, or the
    // broker's 24 h retention would delete records under the test
    await withAdmin((admin) =>
      admin.createTopics({
        waitForLeaders: true,
        topics: Object.values(topics).map((topic) => ({ topic, numPartitions: PARTITIONS, configEntries: [{ name: 'retention.ms', value: '-1' }] })),
      }),
    );
    // many accounts: each position is written only a few times, so its last write may come at any time, an outage
    // included (a lost write shows at the end instead of being overwritten)
    const gen = generateTrades({ seed: 20250407, events: 6000, accounts: 150 });
    expect(gen.duplicates).toBeGreaterThan(50);

    // ---- the application: one worker of the trades topology, on this test's topics
    const applicationId = unique('outage-trades-app');
    const worker = new Worker({
      applicationId,
      topology: renameTopics(tradesTopology({ serdes: tradesSerdes, backend: 'rocksdb', partitions: PARTITIONS }), {
        [TradesTopics.input]: topics.trades,
        [TradesTopics.positions]: topics.positions,
        [TradesTopics.ledger]: topics.ledger,
      }),
      brokers: brokers(),
      stateDir,
      guarantee: 'exactly_once',
      logger: pino({ level: 'error' }),
    });
    cleanups.push(() => worker.stop());
    let deadLetters = 0;
    worker.on('dead-letter', () => deadLetters++);

    // ---- its sinks, each through a proxy to its database
    const control: pg.Client = await pgClient();
    cleanups.push(() => control.end());
    const redis: Redis = redisClient();
    cleanups.push(() => redis.quit());
    const pgProxy = await OutageProxy.start(PG.port, PG.host);
    const redisProxy = await OutageProxy.start(REDIS.port, REDIS.host);
    cleanups.push(() => pgProxy.close(), () => redisProxy.close());
    const schema = freshSchema('outage');
    const prefix = unique('weirtest-outage');
    cleanups.push(() => dropSchema(control, schema), () => deleteKeys(redis, prefix));
    const json = Serdes.json<unknown>() as Serde<unknown>;
    const runnerSettings = {
      brokers: brokers(),
      batchSize: 300,
      flushIntervalMs: 100,
      sessionTimeoutMs: 6000,
      retry: { initialRetryTime: 100, maxRetryTime: 1000 },
      breaker: { failureThreshold: 3, coolDownMs: 500 },
    };
    const pgSink = new PostgresSink({
      name: unique('pg-outage'),
      schema,
      connection: { host: PG.host, port: pgProxy.port },
      writers: { [topics.positions]: postgresWriters.positions(), [topics.ledger]: postgresWriters.ledgerEntries() },
    });
    const pgRunner = new SinkRunner({ ...runnerSettings, sink: pgSink, topics: { [topics.positions]: json, [topics.ledger]: json } });
    const redisSink = new RedisSink({
      name: unique('redis-outage'),
      prefix,
      redis: { host: REDIS.host, port: redisProxy.port },
      writers: { [topics.positions]: redisWriters.positions() },
    });
    const redisRunner = new SinkRunner({ ...runnerSettings, sink: redisSink, topics: { [topics.positions]: json } });
    cleanups.push(() => pgRunner.stop(), () => redisRunner.stop());
    const histories = new Map([pgRunner, redisRunner].map((runner) => [runner, recordHistory(runner)]));
    const pgStored = () => pgStoredOffsets(control, schema, pgSink.name);
    const redisStored = () => redisStoredOffsets(redis, prefix, redisSink.name);

    // ---- the input, sent in order (keyed by account, at its event time) as the test goes
    const producer: Producer = kafka().producer({ allowAutoTopicCreation: false });
    await producer.connect();
    cleanups.push(() => producer.disconnect());
    let sent = 0;
    const send = async (n: number) => {
      const chunk = gen.events.slice(sent, sent + n);
      sent += chunk.length;
      await produce(
        topics.trades,
        PARTITIONS,
        chunk.map((e) => ({ key: e.accountId, value: tradesSerdes.trades.serialize(e), timestamp: e.eventTime })),
        producer,
      );
    };
    const admin: Admin = kafka().admin();
    await admin.connect();
    cleanups.push(() => admin.disconnect());
    const progress = async (): Promise<Omit<Sample, 'other'>> => {
      const [committed] = await admin.fetchOffsets({ groupId: applicationId, topics: [topics.trades] });
      const input = committed!.partitions.reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
      let output = 0;
      for (const t of [topics.positions, topics.ledger]) for (const o of await admin.fetchTopicOffsets(t)) output += Number(o.high);
      return { input, output };
    };

    await send(1000);
    await worker.start();
    await pgRunner.start();
    await redisRunner.start();
    await waitFor('both sinks writing', () => pgRunner.status().recordsWritten > 0 && redisRunner.status().recordsWritten > 0, 120_000, 100);

    /** Take one database away for OUTAGE_MS while trades keep arriving, checking everything said above; then bring it back. */
    const outage = async (which: string, proxy: OutageProxy, down: SinkRunner, storedDown: () => Promise<Map<string, bigint>>, storedUp: () => Promise<Map<string, bigint>>) => {
      let feeding = true;
      const feeder = (async () => {
        while (feeding && sent < gen.events.length) {
          await send(FEED_PER_TICK);
          await sleep(FEED_EVERY_MS);
        }
      })();
      const refusedBefore = proxy.refused;
      proxy.down();
      try {
        await waitFor(`the ${which} sink to report the outage`, () => down.status().state === 'stalled' && down.status().breaker === 'open', 30_000, 20);
        expect(down.status().lastError).not.toBeNull();
        const frozen = await storedDown();
        const samples: Sample[] = [];
        const until = Date.now() + OUTAGE_MS;
        while (Date.now() < until) {
          const s = down.status();
          expect(s.state, `${which} sink state during the outage`).toBe('stalled');
          expect(['open', 'half-open'], `${which} breaker during the outage`).toContain(s.breaker);
          samples.push({ ...(await progress()), other: sum(await storedUp()) });
          await sleep(250);
        }
        // nothing reached the missing database
        expect(await storedDown()).toEqual(frozen);
        // the worker went on all along (and was fed all along), and so did the other sink
        expect(sent, 'trades left to send').toBeLessThan(gen.events.length);
        const [first, mid, last] = [samples[0]!, samples[Math.floor(samples.length / 2)]!, samples[samples.length - 1]!];
        expect(samples.length).toBeGreaterThanOrEqual(3);
        expect([mid.input > first.input, last.input > mid.input], `committed input offsets ${first.input} → ${mid.input} → ${last.input}`).toEqual([true, true]);
        expect([mid.output > first.output, last.output > mid.output], `output end offsets ${first.output} → ${mid.output} → ${last.output}`).toEqual([true, true]);
        expect(last.other, 'offsets stored by the other sink').toBeGreaterThan(first.other);
        // it kept trying, with backoff: a few connection attempts a second, not a busy loop
        const attempts = proxy.refused - refusedBefore;
        expect(attempts).toBeGreaterThanOrEqual(2);
        expect(attempts).toBeLessThan(200);
        console.log(
          `${which} away ${OUTAGE_MS} ms: ${attempts} connection attempts refused; worker input ${first.input} → ${last.input}, outputs ${first.output} → ${last.output}; the other sink ${first.other} → ${last.other}`,
        );
      } finally {
        proxy.restore();
        feeding = false;
        await feeder;
      }
      await waitFor(`the ${which} sink to recover`, () => down.status().state === 'running' && down.status().breaker === 'closed', 60_000, 50);
    };

    await outage('Postgres', pgProxy, pgRunner, pgStored, redisStored);
    await outage('Redis', redisProxy, redisRunner, redisStored, pgStored);
    for (const [runner, { breaker }] of histories) expect(breaker.map((b) => b.to), runner.name).toEqual(expect.arrayContaining(['open', 'half-open', 'closed']));

    // ---- the rest of the input; everything drains through the worker and both sinks
    await send(gen.events.length - sent);
    await waitFor('the worker to drain its input', () => drained(applicationId, topics.trades), 180_000, 250);
    await waitUntilStored('every offset stored by the Postgres sink', [topics.positions, topics.ledger], pgStored, 120_000);
    await waitUntilStored('every offset stored by the Redis sink', [topics.positions], redisStored, 120_000);
    for (const runner of [pgRunner, redisRunner]) expect(runner.status(), runner.name).toMatchObject({ state: 'running', breaker: 'closed' });
    await pgRunner.stop();
    await redisRunner.stop();
    await worker.stop();
    expect(deadLetters).toBe(0);

    // ---- the output topics: each ledger entry once, the positions a recomputation from the trades gives
    const ledgerOut = (await readAll(topics.ledger, PARTITIONS)).map((m) => tradesSerdes.ledgerEntries.deserialize(m.value!));
    const positionsOut = (await readAll(topics.positions, PARTITIONS)).map((m) => tradesSerdes.positions.deserialize(m.value!));
    expect(ledgerOut).toHaveLength(expectedLedgerEntries(gen.unique));
    const ledger: ReturnType<typeof ledgerEntries>['expected'] = new Map(ledgerOut.map((e: LedgerEntry) => [entryKey(e), { ...e, amountText: formatDecimal(e.amount, Scale.notional) }]));
    expect(ledger.size).toBe(ledgerOut.length);
    const latest = new Map<string, Position>();
    for (const p of positionsOut) latest.set(`${p.accountId}|${p.instrument}`, p);
    const { live } = finalLiveSets(gen.unique);
    expect([...latest.keys()].sort()).toEqual([...live.keys()].sort());
    for (const [key, trades] of live) {
      const p = latest.get(key)!;
      const got: ModelPosition = { quantity: p.quantity, costBasis: p.costBasis, averageCost: p.averageCost, realisedPnl: p.realisedPnl, openLots: p.openLots, liveTrades: p.liveTrades };
      expect(got, key).toEqual(modelPosition(trades));
    }
    const expectedPositions: ReturnType<typeof positions>['expected'] = new Map(
      [...latest].map(([key, p]) => [
        key,
        {
          ...p,
          quantity: formatDecimal(p.quantity, Scale.quantity),
          costBasis: formatDecimal(p.costBasis, Scale.notional),
          averageCost: p.averageCost === null ? null : formatDecimal(p.averageCost, Scale.averageCost),
          realisedPnl: formatDecimal(p.realisedPnl, Scale.notional),
        } as never,
      ]),
    );

    // ---- the databases hold exactly that
    await expectTablesExact(control, schema, { ledger, positions: expectedPositions });
    await expectRedisKeysExact(redis, prefix, { positions: expectedPositions });
  }, 300_000);
});
