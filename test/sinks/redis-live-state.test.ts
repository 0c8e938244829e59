/**
 * The live routing state writers (sinks/redis/routing-live-state.ts) on the real broker and the real server: the
 * routing stores' changelogs (keys `<tenant>␀<agentId>` and `<tenant>␀skill␀<skill>` / `<tenant>␀count␀<name>`,
 * JSON values, tombstones) read by the exactly-once runner into `<prefix>:agent-load:<tenant>` and
 * `<prefix>:queue-depth:<tenant>`. Each test has its own topics, sink name and key prefix.
 */
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisSink } from '../../sinks/redis/redis-sink.js';
import { routingLiveStateWriters } from '../../sinks/redis/routing-live-state.js';
import { SinkRunner } from '../../sinks/sink-runner.js';
import { partitionForKey } from '../../runtime/partitioner.js';
import { Serdes, type Serde } from '../../runtime/serde.js';
import { brokers, createTopics, kafka, unique, waitFor } from '../helpers/kafka.js';
import { deleteKeys, redisClient, redisStoredOffsets, waitUntilStored } from './support.js';

const PARTITIONS = 3;
const SEP = '\u0000';
let control: Redis;
const prefixes: string[] = [];
const runners: SinkRunner[] = [];

beforeAll(() => {
  control = redisClient();
});
afterEach(async () => {
  for (const r of runners.splice(0)) await r.stop().catch(() => undefined);
});
afterAll(async () => {
  for (const p of prefixes) await deleteKeys(control, p).catch(() => undefined);
  await control.quit();
});

interface ChangelogRecord {
  key: string;
  /** null: a tombstone */
  value: unknown;
  headers?: Record<string, string>;
}

/** Produce like a task's changelog: transactional, JSON values (tombstones as null values), partitioned by key. */
async function produceChangelog(topic: string, records: readonly ChangelogRecord[], perTransaction = 150): Promise<void> {
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
    }
  } finally {
    await producer.disconnect();
  }
}

/** A seeded random walk of agent loads and skill gauges over a few tenants, with deletes, counters and a marker. */
function changelogs(seed: number, n: number) {
  let a = seed >>> 0;
  const rnd = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const tenants = ['t-a', 't-b', 't-c', 't-d', 't-e'];
  const agentIds = ['ag-1', 'ag-2', 'ag-3', 'ag-4'];
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

async function setup(label: string) {
  const topics = { agents: unique(`live-${label}-routing-agents-changelog`), stats: unique(`live-${label}-routing-stats-changelog`) };
  await createTopics(Object.values(topics).map((topic) => ({ topic, partitions: PARTITIONS, compact: true })));
  const prefix = unique(`weirtest-live-${label}`);
  prefixes.push(prefix);
  return { topics, prefix, name: unique(`redis-live-${label}`) };
}

function startRunner(spec: Awaited<ReturnType<typeof setup>>, tombstones = true): SinkRunner {
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
  });
  runners.push(runner);
  return runner;
}

/** Every hash under the prefix but the offsets, as tenant → field → value, per kind. */
async function liveKeys(prefix: string): Promise<{ load: Map<string, Map<string, string>>; depth: Map<string, Map<string, string>>; other: string[] }> {
  const load = new Map<string, Map<string, string>>();
  const depth = new Map<string, Map<string, string>>();
  const other: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await control.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const rest = key.slice(prefix.length + 1);
      if (rest.startsWith('offsets:')) continue;
      const [kind, tenant] = [rest.slice(0, rest.indexOf(':')), rest.slice(rest.indexOf(':') + 1)];
      const fields = new Map(Object.entries(await control.hgetall(key)));
      if (kind === 'agent-load') load.set(tenant, fields);
      else if (kind === 'queue-depth') depth.set(tenant, fields);
      else other.push(key);
    }
  } while (cursor !== '0');
  return { load, depth, other };
}

/** Redis drops a hash whose last field is deleted: an expected tenant with no fields is no key at all. */
const nonEmpty = (m: Map<string, Map<string, string>>) => new Map([...m].filter(([, h]) => h.size > 0));

describe('routing live state in Redis (real Kafka, real Redis)', () => {
  it('agent load and queue depth equal the changelogs’ last values, tombstones delete, across a restart', async () => {
    const spec = await setup('exact');
    const { agents, stats, expectedLoad, expectedDepth } = changelogs(20250301, 3000);
    const half = (list: ChangelogRecord[], i: number) => list.slice((i * list.length) / 2, ((i + 1) * list.length) / 2);
    await Promise.all([produceChangelog(spec.topics.agents, half(agents, 0)), produceChangelog(spec.topics.stats, half(stats, 0))]);

    const first = startRunner(spec);
    await first.start();
    await waitUntilStored('the first half stored', Object.values(spec.topics), () => redisStoredOffsets(control, spec.prefix, spec.name));
    await first.stop();

    // the second lifetime resumes from the offsets in Redis: nothing applied twice, nothing skipped
    await Promise.all([produceChangelog(spec.topics.agents, half(agents, 1)), produceChangelog(spec.topics.stats, half(stats, 1))]);
    const second = startRunner(spec);
    await second.start();
    await waitUntilStored('every offset stored', Object.values(spec.topics), () => redisStoredOffsets(control, spec.prefix, spec.name));
    expect(second.status()).toMatchObject({ state: 'running', lastError: null });
    await second.stop();

    const got = await liveKeys(spec.prefix);
    expect(got.other).toEqual([]);
    expect(got.load).toEqual(nonEmpty(expectedLoad));
    expect(got.depth).toEqual(nonEmpty(expectedDepth));
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
    expect(await control.hgetall(`${spec.prefix}:agent-load:t-x`)).toEqual({ 'ag-1': '2' });
  }, 60_000);
});
