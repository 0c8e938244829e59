/**
 * Shared helpers of the sink tests: transactional producing, end offsets, the per-test Postgres schema and Redis
 * prefix, waiting until a sink has stored the end offset of every partition, SIGKILLs of sink processes as a flush
 * begins, sustained connection outages under load, the lifecycle of a sink test file, and the exactness check of a
 * Redis prefix.
 */
import pg from 'pg';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { deleteUnder, keysStartingWith } from '../../sinks/redis/keys.js';
import { partitionForKey } from '../../runtime/partitioner.js';
import { Serdes } from '../../runtime/serde.js';
import { dropSchema, ensureDatabase } from '../../sinks/postgres/migrate.js';
import { killRedisConnections, terminatePostgresConnections } from '../../bench/chaos/faults.js';
import { quoteIdent } from '../../sinks/postgres/writers.js';
import { redisKeys, type PositionJson, type RoutingDecisionJson } from '../../sinks/redis/writers.js';
import type { SinkRunner, SinkRunnerEvents } from '../../sinks/sink-runner.js';
import { decisionKey, type Keyed, type positions, type routingDecisions } from '../fixtures/sink-data.js';
import { brokers, kafka, unique, waitFor, withAdmin } from '../helpers/kafka.js';
import { ChildWorker } from '../helpers/processes.js';

export const PG = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'weir' };
/** The test database as a connection URL (DATABASE_URL), for the processes that take one. */
export const PG_URL = `postgres://${PG.user}@${PG.host}:${PG.port}/${PG.database}`;

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

/**
 * SIGKILL a slowed sink worker (test/fixtures/sink-worker.ts and its kin) the moment it prints that the flush of a
 * batch with records begins: the kill is sent from the output listener itself, so it lands inside the slowed
 * flush's wait. Resolves once the process is gone and its output is read to the end, saying whether it died inside
 * that flush (no `flush` line after it: the batch was never done) and how many records the batch held.
 */
export async function killAtFlushBegin(w: ChildWorker, timeoutMs = 60_000): Promise<{ midBatch: boolean; records: number }> {
  const out = w.proc.stdout!;
  const closed = out.closed ? Promise.resolve() : new Promise<void>((r) => out.once('close', () => r()));
  let seen = '';
  const hits: Array<{ at: number; records: number }> = [];
  const onData = (d: Buffer) => {
    seen += d.toString();
    if (hits.length > 0) return;
    const m = /"event":"flush-begin","records":([1-9]\d*)/.exec(seen);
    if (!m) return;
    hits.push({ at: m.index, records: Number(m[1]) });
    w.kill('SIGKILL');
  };
  out.on('data', onData);
  try {
    await waitFor('the flush of a batch to begin', () => hits.length > 0 || w.exited, timeoutMs, 20);
    const hit = hits[0];
    if (!hit) throw new Error(`the sink worker exited before a flush began:\n${w.output.slice(-3000)}`);
    await closed;
    return { midBatch: !/"event":"flush"/.test(seen.slice(hit.at)), records: hit.records };
  } finally {
    out.off('data', onData);
  }
}

/**
 * `rounds` times: while `produce(round)` runs, a fresh slowed sink process (`start()`) stores round + 1 batches of
 * its own (more each round) and is then SIGKILLed as the flush of its next batch begins (killAtFlushBegin). Returns
 * how many of the kills landed inside that flush.
 */
export async function killAtFlushBeginRounds(rounds: number, start: () => ChildWorker, produce: (round: number) => Promise<unknown>): Promise<number> {
  let killedMidBatch = 0;
  for (let round = 0; round < rounds; round++) {
    const producing = produce(round);
    const w = start();
    await waitFor(`${round + 1} batches stored by process ${round + 1}`, () => (w.output.match(/"event":"flush","records":[1-9]/g) ?? []).length > round || w.exited, 60_000, 20);
    const kill = await killAtFlushBegin(w);
    expect(await w.waitExit()).toBe('SIGKILL');
    if (kill.midBatch) killedMidBatch++;
    await producing;
  }
  return killedMidBatch;
}

/** A sink process that, once running, stores the end offset of every partition of `topics`, then stops gracefully on SIGTERM. */
export async function storeAllThenStop(w: ChildWorker, topics: readonly string[], stored: () => Promise<Map<string, bigint>>, timeoutMs = 180_000): Promise<void> {
  await w.waitForOutput(/"event":"running"/, 60_000);
  await waitUntilStored('every offset stored', topics, stored, timeoutMs);
  w.kill('SIGTERM');
  expect(await w.waitExit()).toBe(0);
}

/** What a sink runner went through, recorded from before it starts: its breaker's transitions and its states. */
export interface RunnerHistory {
  breaker: Array<SinkRunnerEvents['breaker']>;
  states: string[];
}

export function recordHistory(runner: SinkRunner): RunnerHistory {
  const history: RunnerHistory = { breaker: [], states: [] };
  runner.on('breaker', (e) => history.breaker.push(e));
  runner.on('state', (e) => history.states.push(e.to));
  return history;
}

/**
 * `outages` sustained outages of a running sink runner, one after the other: for `ms`, every new connection of the
 * sink is cut as soon as it shows up (`cutConnections` cuts them and says how many; polled every `pollMs`). Each
 * outage cuts some connection, shows the runner stalled with an error and opens the breaker once more, and the runner
 * recovers (running, breaker closed) after it; over all of them the breaker went open, half-open and closed, and the
 * runner through stalled.
 */
export async function sustainedOutages(
  runner: SinkRunner,
  history: RunnerHistory,
  cutConnections: () => Promise<number>,
  opts: { outages?: number; ms?: number; pollMs?: number } = {},
): Promise<void> {
  const { breaker, states } = history;
  for (let outage = 0; outage < (opts.outages ?? 3); outage++) {
    const opened = breaker.filter((b) => b.to === 'open').length;
    const until = Date.now() + (opts.ms ?? 1500);
    let cut = 0;
    let sawStall = false;
    while (Date.now() < until) {
      cut += await cutConnections();
      const s = runner.status();
      if (s.state === 'stalled' && s.lastError) sawStall = true;
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 10));
    }
    expect(cut).toBeGreaterThan(0);
    expect(sawStall).toBe(true);
    expect(breaker.filter((b) => b.to === 'open').length).toBeGreaterThan(opened);
    await waitFor('recovery', () => runner.status().state === 'running' && runner.status().breaker === 'closed', 30_000, 50);
  }
  expect(breaker.map((b) => b.to)).toEqual(expect.arrayContaining(['open', 'half-open', 'closed']));
  expect(states).toContain('stalled');
}

/** What a sink test file shares, from sinkTests. */
export interface SinkTests<C> {
  /** the tests' own connection to the database (not a sink's), open from before the tests to after them */
  readonly control: C;
  /** the per-test places in the database (Redis key prefixes, Postgres schemas), dropped after the file's tests */
  names: string[];
  /** sink runners, stopped after each test */
  runners: SinkRunner[];
  /** starts a sink process (`entry`, on the test broker, with `env`), SIGKILLed after each test */
  child(entry: string, env: Record<string, string>): ChildWorker;
}

/**
 * The lifecycle of a sink test file: `open` the control connection before the tests; after each test SIGKILL the
 * processes it started and stop its runners; after the file's tests `drop` every name and `close` the connection.
 */
export function sinkTests<C>(
  open: () => C | Promise<C>,
  drop: (control: C, name: string) => Promise<unknown>,
  close: (control: C) => Promise<unknown>,
): SinkTests<C> {
  let control: C | undefined;
  const names: string[] = [];
  const runners: SinkRunner[] = [];
  const children: ChildWorker[] = [];
  beforeAll(async () => {
    control = await open();
  });
  afterEach(async () => {
    for (const c of children.splice(0)) {
      c.kill('SIGKILL');
      await c.waitExit().catch(() => undefined);
    }
    for (const r of runners.splice(0)) await r.stop().catch(() => undefined);
  });
  afterAll(async () => {
    if (control === undefined) return;
    for (const name of names) await drop(control, name).catch(() => undefined);
    await close(control);
  });
  return {
    get control() {
      if (control === undefined) throw new Error('the control connection opens before the tests');
      return control;
    },
    names,
    runners,
    child(entry, env) {
      const c = new ChildWorker(entry, { KAFKA_BROKERS: brokers(), ...env });
      children.push(c);
      return c;
    },
  };
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

export { dropSchema };

export async function pgStoredOffsets(c: pg.Client, schema: string, sink: string): Promise<Map<string, bigint>> {
  const res = await c.query<{ topic: string; partition: number; next_offset: string }>(
    `SELECT topic, "partition", next_offset FROM ${quoteIdent(schema)}.sink_offsets WHERE sink = $1`,
    [sink],
  );
  return new Map(res.rows.map((r) => [`${r.topic}:${r.partition}`, BigInt(r.next_offset)]));
}

/** Terminate the sink's connections (by application_name) in the test database; returns how many were cut. */
export const terminateSinkConnections = (c: pg.Client, sink: string): Promise<number> => terminatePostgresConnections(c, PG.database, sink);

// ---- Redis -------------------------------------------------------------------------------------------------

export const REDIS = { host: '127.0.0.1', port: 6379 };

export function redisClient(): Redis {
  return new Redis({ ...REDIS, connectionName: 'weir-sink-test-control' });
}

/** sinkTests over Redis: the names are key prefixes, every key under them deleted after the file's tests. */
export const redisSinkTests = (): SinkTests<Redis> => sinkTests(redisClient, deleteUnder, (c) => c.quit());

export async function redisStoredOffsets(r: Redis, prefix: string, sink: string): Promise<Map<string, bigint>> {
  const all = await r.hgetall(redisKeys.offsets(prefix, sink));
  return new Map(Object.entries(all).map(([k, v]) => [k, BigInt(v)]));
}

/** CLIENT KILL every connection of the sink; returns how many were cut. */
export { killRedisConnections as killSinkConnections };

/** Delete every key `<prefix>:*`. */
export { deleteUnder as deleteKeys };

export interface ExpectedKeys {
  positions?: ReturnType<typeof positions>['expected'];
  routing?: ReturnType<typeof routingDecisions>['expected'];
}

/** Every key under the prefix (but the offsets) is an expected one, with exactly the expected value, and none is missing. */
export async function expectRedisKeysExact(r: Redis, prefix: string, expected: ExpectedKeys): Promise<void> {
  const keys: string[] = [];
  for await (const found of keysStartingWith(r, `${prefix}:`)) keys.push(...found);
  const wrong: string[] = [];
  let positionFields = 0;
  let decisions = 0;
  for (const key of keys) {
    if (key.startsWith(`${prefix}:offsets:`)) continue;
    if (key.startsWith(`${prefix}:position:`)) {
      const account = key.slice(`${prefix}:position:`.length);
      for (const [instrument, text] of Object.entries(await r.hgetall(key))) {
        positionFields++;
        const got = JSON.parse(text) as PositionJson;
        const e = expected.positions?.get(`${account}|${instrument}`);
        const want = e && {
          accountId: e.accountId,
          instrument: e.instrument,
          quantity: e.quantity,
          costBasis: e.costBasis,
          averageCost: e.averageCost,
          realisedPnl: e.realisedPnl,
          currency: e.currency,
          openLots: e.openLots,
          liveTrades: e.liveTrades,
          lastTradeId: e.lastTradeId,
          lastTradeVersion: e.lastTradeVersion,
          updatedAt: e.updatedAt,
        };
        if (JSON.stringify(got) !== JSON.stringify(want)) wrong.push(`${key} ${instrument}: ${text} ≠ ${JSON.stringify(want)}`);
      }
    } else if (key.startsWith(`${prefix}:routing-decision:`)) {
      decisions++;
      const got = JSON.parse((await r.get(key))!) as RoutingDecisionJson;
      const want = expected.routing?.get(decisionKey(got));
      if (want === undefined || key !== redisKeys.routingDecision(prefix, want.tenantId, want.conversationId) || JSON.stringify(got) !== JSON.stringify(want)) {
        wrong.push(`${key}: ${JSON.stringify(got)} ≠ ${JSON.stringify(want)}`);
      }
    } else {
      wrong.push(`unexpected key ${key}`);
    }
  }
  expect(wrong.slice(0, 5)).toEqual([]);
  expect(positionFields).toBe(expected.positions?.size ?? 0);
  expect(decisions).toBe(expected.routing?.size ?? 0);
}

