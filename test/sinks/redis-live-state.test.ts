/**
 * The live routing state writers (sinks/redis/routing-live-state.ts) on the real broker and the real server: the
 * routing stores' changelogs (keys `<tenant>␀<agentId>` and `<tenant>␀skill␀<skill>` / `<tenant>␀count␀<name>`,
 * JSON values, tombstones) read by the exactly-once runner into `<prefix>:agent-load:<tenant>` and
 * `<prefix>:queue-depth:<tenant>`, across a graceful restart, SIGKILLs of a sink process mid-batch and connections
 * killed under load. Each test has its own topics, sink name and key prefix.
 */
import { describe, expect, it } from 'vitest';
import { RedisSink } from '../../sinks/redis/redis-sink.js';
import { keysStartingWith } from '../../sinks/redis/keys.js';
import { routingLiveStateWriters } from '../../sinks/redis/routing-live-state.js';
import { SinkRunner, type SinkRunnerConfig } from '../../sinks/sink-runner.js';
import { partitionForKey } from '../../runtime/partitioner.js';
import { Serdes, type Serde } from '../../runtime/serde.js';
import type { LiveStateSpec } from '../fixtures/live-state-sink-worker.js';
import { brokers, createTopics, kafka, unique, waitFor } from '../helpers/kafka.js';
import { killAtFlushBeginRounds, killSinkConnections, recordHistory, redisSinkTests, redisStoredOffsets, storeAllThenStop, sustainedOutages, waitUntilStored } from './support.js';

const PARTITIONS = 3;
const SEP = '\u0000';
const scope = redisSinkTests();
const { names: prefixes, runners } = scope;

interface ChangelogRecord {
  key: string;
  /** null: a tombstone */
  value: unknown;
  headers?: Record<string, string>;
}

/** Produce like a task's changelog: transactional, JSON values (tombstones as null values), partitioned by key. */
async function produceChangelog(topic: string, records: readonly ChangelogRecord[], perTransaction = 150, pauseMs = 0): Promise<void> {
  const producer = kafka().producer({ transactionalId: unique('weir-live-test'), idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  const json = Serdes.json<unknown>();
  try {
    for (let from = 0; from < records.length; from += perTransaction) {
      const tx = await producer.transaction();
      await tx.send({
        topic,
        acks: -1,
        messages: records.slice(from, from + perTransaction).map((r) => ({
          key: r.key,
          value: r.value === null ? null : json.serialize(r.value),
          headers: r.headers,
          partition: partitionForKey(Buffer.from(r.key), PARTITIONS),
        })),
      });
      await tx.commit();
      if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
    }
  } finally {
    await producer.disconnect();
  }
}

/**
 * A seeded random walk of agent loads and skill gauges over a few tenants, with deletes, counters and a marker. With
 * many agents each field is written only a few times, so the last values are spread over the whole stream (a write
 * lost midway shows at the end) rather than all near its end.
 */
function changelogs(seed: number, n: number, agentCount = 4) {
  let a = seed >>> 0;
  const rnd = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const tenants = ['t-a', 't-b', 't-c', 't-d', 't-e'];
  const agentIds = Array.from({ length: agentCount }, (_, i) => `ag-${i + 1}`);
  const skills = ['billing', 'sales', 'tech', 'fr'];
  const agents: ChangelogRecord[] = [];
  const stats: ChangelogRecord[] = [];
  const expectedLoad = new Map<string, Map<string, string>>();
  const expectedDepth = new Map<string, Map<string, string>>();
  const set = (m: Map<string, Map<string, string>>, t: string, f: string, v: string | null) => {
    const h = m.get(t) ?? new Map<string, string>();
    if (v === null) h.delete(f);
    else h.set(f, v);
    m.set(t, h);
  };
  for (let i = 0; i < n; i++) {
    const tenant = pick(tenants);
    const agentId = pick(agentIds);
    if (rnd() < 0.08) {
      agents.push({ key: `${tenant}${SEP}${agentId}`, value: null });
      set(expectedLoad, tenant, agentId, null);
    } else {
      const load = Math.floor(rnd() * 5);
      agents.push({
        key: `${tenant}${SEP}${agentId}`,
        value: { agentId, status: pick(['AVAILABLE', 'AWAY', 'LOGGED_OUT']), skills: [pick(skills)], maxConcurrent: 4, load, lastAssignedAt: i, updatedAt: i },
      });
      set(expectedLoad, tenant, agentId, String(load));
    }
    const skill = pick(skills);
    const r = rnd();
    if (r < 0.15) stats.push({ key: `${tenant}${SEP}count${SEP}endedUnknown`, value: i });
    else if (r < 0.22) {
      stats.push({ key: `${tenant}${SEP}skill${SEP}${skill}`, value: null });
      set(expectedDepth, tenant, skill, null);
    } else {
      const waiting = Math.floor(rnd() * 9);
      stats.push({ key: `${tenant}${SEP}skill${SEP}${skill}`, value: { waiting, active: Math.floor(rnd() * 3) } });
      set(expectedDepth, tenant, skill, String(waiting));
    }
    // a replay's reset marker names no tenant: passed over
    if (i === Math.floor(n / 2)) stats.push({ key: `${SEP}weir.reset`, value: null, headers: { 'weir.reset': '1' } });
  }
  return { agents, stats, expectedLoad, expectedDepth };
}

async function setup(label: string): Promise<LiveStateSpec> {
  const topics = { agents: unique(`live-${label}-routing-agents-changelog`), stats: unique(`live-${label}-routing-stats-changelog`) };
  await createTopics(Object.values(topics).map((topic) => ({ topic, partitions: PARTITIONS, compact: true })));
  const prefix = unique(`weirtest-live-${label}`);
  prefixes.push(prefix);
  return { topics, prefix, name: unique(`redis-live-${label}`) };
}

function startRunner(spec: LiveStateSpec, tombstones = true, extra: Partial<SinkRunnerConfig> = {}): SinkRunner {
  const json = Serdes.json<unknown>() as Serde<unknown>;
  const runner = new SinkRunner({
    sink: new RedisSink({
      name: spec.name,
      prefix: spec.prefix,
      writers: { [spec.topics.agents]: routingLiveStateWriters.agentLoad(), [spec.topics.stats]: routingLiveStateWriters.queueDepth() },
    }),
    brokers: brokers(),
    topics: { [spec.topics.agents]: json, [spec.topics.stats]: json },
    tombstoneTopics: tombstones ? [spec.topics.agents, spec.topics.stats] : [spec.topics.stats],
    batchSize: 200,
    flushIntervalMs: 100,
    sessionTimeoutMs: 6000,
    ...extra,
  });
  runners.push(runner);
  return runner;
}

/** Every hash under the prefix but the offsets, as tenant → field → value, per kind. */
async function liveKeys(prefix: string): Promise<{ load: Map<string, Map<string, string>>; depth: Map<string, Map<string, string>>; other: string[] }> {
  const load = new Map<string, Map<string, string>>();
  const depth = new Map<string, Map<string, string>>();
  const other: string[] = [];
  for await (const keys of keysStartingWith(scope.control, `${prefix}:`)) {
    for (const key of keys) {
      const rest = key.slice(prefix.length + 1);
      if (rest.startsWith('offsets:')) continue;
      const [kind, tenant] = [rest.slice(0, rest.indexOf(':')), rest.slice(rest.indexOf(':') + 1)];
      const fields = new Map(Object.entries(await scope.control.hgetall(key)));
      if (kind === 'agent-load') load.set(tenant, fields);
      else if (kind === 'queue-depth') depth.set(tenant, fields);
      else other.push(key);
    }
  }
  return { load, depth, other };
}

/** Redis drops a hash whose last field is deleted: an expected tenant with no fields is no key at all. */
const nonEmpty = (m: Map<string, Map<string, string>>) => new Map([...m].filter(([, h]) => h.size > 0));

/** The live state under the prefix is exactly the walk's last values: nothing missing, nothing left over, nothing else. */
async function expectLiveExact(prefix: string, walk: ReturnType<typeof changelogs>): Promise<void> {
  const got = await liveKeys(prefix);
  expect(got.other).toEqual([]);
  expect(got.load).toEqual(nonEmpty(walk.expectedLoad));
  expect(got.depth).toEqual(nonEmpty(walk.expectedDepth));
}

const storedOf = (spec: LiveStateSpec) => () => redisStoredOffsets(scope.control, spec.prefix, spec.name);

describe('routing live state in Redis (real Kafka, real Redis)', () => {
  it('agent load and queue depth equal the changelogs’ last values, tombstones delete, across a restart', async () => {
    const spec = await setup('exact');
    const { agents, stats, expectedLoad, expectedDepth } = changelogs(20250301, 3000);
    const half = (list: ChangelogRecord[], i: number) => list.slice((i * list.length) / 2, ((i + 1) * list.length) / 2);
    await Promise.all([produceChangelog(spec.topics.agents, half(agents, 0)), produceChangelog(spec.topics.stats, half(stats, 0))]);

    const first = startRunner(spec);
    await first.start();
    await waitUntilStored('the first half stored', Object.values(spec.topics), storedOf(spec));
    await first.stop();

    // the second lifetime resumes from the offsets in Redis: nothing applied twice, nothing skipped
    await Promise.all([produceChangelog(spec.topics.agents, half(agents, 1)), produceChangelog(spec.topics.stats, half(stats, 1))]);
    const second = startRunner(spec);
    await second.start();
    await waitUntilStored('every offset stored', Object.values(spec.topics), storedOf(spec));
    expect(second.status()).toMatchObject({ state: 'running', lastError: null });
    await second.stop();

    await expectLiveExact(spec.prefix, { agents, stats, expectedLoad, expectedDepth });
    // the walk exercised deletes and counters (so the checks above checked something)
    expect(agents.filter((r) => r.value === null).length).toBeGreaterThan(50);
    expect(stats.filter((r) => r.key.includes(`${SEP}count${SEP}`)).length).toBeGreaterThan(50);
  }, 120_000);

  it('a tombstone on a topic not named in tombstoneTopics stalls its partition, naming the record', async () => {
    const spec = await setup('stall');
    const key = `t-x${SEP}ag-1`;
    await produceChangelog(spec.topics.agents, [
      { key, value: { agentId: 'ag-1', load: 2 } },
      { key, value: null },
      { key, value: { agentId: 'ag-1', load: 3 } },
    ]);
    const runner = startRunner(spec, false);
    await runner.start();
    const partition = partitionForKey(Buffer.from(key), PARTITIONS);
    const stalledPartition = () => runner.status().partitions.find((p) => p.stalled !== null && p.stalled !== 'assigning');
    // stalled at the tombstone, with the record before it stored
    await waitFor('the partition to stall', () => stalledPartition()?.committed === '1', 30_000, 100);
    const stalled = stalledPartition()!;
    expect(stalled).toMatchObject({ topic: spec.topics.agents, partition, committed: '1' });
    expect(stalled.stalled).toContain(`record ${spec.topics.agents}/${partition}@1 cannot be written`);
    expect(stalled.stalled).toMatch(/tombstone/);
    // the record before the tombstone landed, the one after it did not
    expect(await scope.control.hgetall(`${spec.prefix}:agent-load:t-x`)).toEqual({ 'ag-1': '2' });
  }, 60_000);

  it('SIGKILL mid-batch (as the flush of a batch begins), several times, while the changelogs grow: the keys end equal to the last values', async () => {
    const spec: LiveStateSpec = { ...(await setup('kill')), slowMs: 200 }; // the wait before WATCH: the kill lands inside it
    const walk = changelogs(20250302, 6000, 300);
    // five waves: each process that is killed has changelog records arriving while it runs
    const wave = (list: ChangelogRecord[], i: number) => list.slice((i * list.length) / 5, ((i + 1) * list.length) / 5);
    const produceWave = (i: number, pauseMs = 0) =>
      Promise.all([produceChangelog(spec.topics.agents, wave(walk.agents, i), 150, pauseMs), produceChangelog(spec.topics.stats, wave(walk.stats, i), 150, pauseMs)]);
    const start = (slowMs = spec.slowMs) =>
      scope.child('test/fixtures/live-state-sink-worker.ts', { SPEC: JSON.stringify({ ...spec, slowMs }), BATCH_SIZE: '150', FLUSH_MS: '50' });
    // a few batches of each process are stored first (more each round), then it dies as the next one begins
    const killedMidBatch = await killAtFlushBeginRounds(4, start, (round) => produceWave(round, 30));
    expect(killedMidBatch).toBeGreaterThanOrEqual(3);
    await produceWave(4);
    await storeAllThenStop(start(0), Object.values(spec.topics), storedOf(spec)); // nothing left to aim at: the last one writes at full speed
    await expectLiveExact(spec.prefix, walk);
  }, 300_000);

  it('connections killed under load (CLIENT KILL): the breaker and status report the outage, the sink recovers, the keys end equal to the last values', async () => {
    const spec = await setup('cut');
    const walk = changelogs(20250303, 6000, 300);
    const runner = startRunner(spec, true, { retry: { initialRetryTime: 50, maxRetryTime: 400 }, breaker: { failureThreshold: 3, coolDownMs: 300 } });
    const history = recordHistory(runner);
    await runner.start();
    await waitFor('the partitions assigned', () => runner.status().state === 'running', 60_000, 50);
    // the load: the changelogs grow all through the outages
    let produced = false;
    const producing = Promise.all([produceChangelog(spec.topics.agents, walk.agents, 100, 60), produceChangelog(spec.topics.stats, walk.stats, 100, 60)]).finally(() => {
      produced = true;
    });
    await waitFor('a first flush of records', () => runner.status().recordsWritten > 0, 30_000, 50);
    expect(produced).toBe(false); // the first outage comes while records arrive
    // sustained outages: every new connection of the sink is killed as soon as it shows up
    await sustainedOutages(runner, history, () => killSinkConnections(scope.control, spec.name));
    expect(await scope.control.ping()).toBe('PONG'); // our own connection was never killed
    await producing;
    await waitUntilStored('every offset stored', Object.values(spec.topics), storedOf(spec), 120_000);
    expect(runner.status()).toMatchObject({ state: 'running', breaker: 'closed' });
    await runner.stop();
    await expectLiveExact(spec.prefix, walk);
  }, 180_000);
});
