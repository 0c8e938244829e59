/**
 * The Redis sink on the real broker and the real server: exactly once through batches, SIGKILLs, killed
 * connections and aborted transactions. Each test has its own topics, sink name (consumer group) and key prefix.
 */
import { describe, expect, it } from 'vitest';
import { OffsetConflictError } from '../../sinks/errors.js';
import { RedisSink } from '../../sinks/redis/redis-sink.js';
import { redisKeys, redisWriters } from '../../sinks/redis/writers.js';
import { SinkRunner, type SinkRunnerConfig } from '../../sinks/sink-runner.js';
import { decisionKey, positions, routingDecisions } from '../fixtures/sink-data.js';
import { buildSink, type SinkSpec } from '../fixtures/sink-factory.js';
import { brokers, createTopics, unique, waitFor } from '../helpers/kafka.js';
import {
  expectRedisKeysExact,
  killAtFlushBeginRounds,
  killSinkConnections,
  produceTransactional,
  recordHistory,
  redisSinkTests,
  redisStoredOffsets,
  storeAllThenStop,
  sustainedOutages,
  waitUntilStored,
  type ExpectedKeys,
} from './support.js';

const PARTITIONS = 3;
const scope = redisSinkTests();
const { names: prefixes, runners } = scope;

async function setup(label: string): Promise<SinkSpec> {
  const topics = { positions: unique(`sink-${label}-positions`), routingDecisions: unique(`sink-${label}-routing`) };
  await createTopics(Object.values(topics).map((topic) => ({ topic, partitions: PARTITIONS })));
  const prefix = unique(`weirtest-${label}`);
  prefixes.push(prefix);
  return { kind: 'redis', name: unique(`redis-${label}`), topics, prefix };
}

function startRunner(spec: SinkSpec, extra: Partial<SinkRunnerConfig> = {}): SinkRunner {
  const { sink, serdes } = buildSink(spec);
  const runner = new SinkRunner({
    sink,
    brokers: brokers(),
    topics: serdes,
    batchSize: 500,
    flushIntervalMs: 100,
    sessionTimeoutMs: 6000,
    retry: { initialRetryTime: 50, maxRetryTime: 400 },
    breaker: { failureThreshold: 3, coolDownMs: 300 },
    ...extra,
  });
  runners.push(runner);
  return runner;
}

const topicsOf = (spec: SinkSpec) => Object.values(spec.topics) as string[];
const stored = (spec: SinkSpec) => () => redisStoredOffsets(scope.control, spec.prefix!, spec.name);

const expectKeysExact = (prefix: string, expected: ExpectedKeys) => expectRedisKeysExact(scope.control, prefix, expected);

describe('Redis sink (real Kafka, real Redis)', () => {
  it('a few thousand records land exactly once; the keys equal the expected ones', async () => {
    const spec = await setup('exact');
    const pos = positions(4000, 61);
    const routing = routingDecisions(3000, 62);
    await produceTransactional([
      { topic: spec.topics.positions!, partitions: PARTITIONS, records: pos.records },
      { topic: spec.topics.routingDecisions!, partitions: PARTITIONS, records: routing.records },
    ]);
    const total = pos.records.length + routing.records.length;
    const runner = startRunner(spec, { batchSize: 2000 });
    const flushes: Array<{ at: number; records: number }> = [];
    runner.on('flush', (e) => flushes.push({ at: Date.now(), records: e.records }));
    await runner.start();
    await waitUntilStored('every offset stored', topicsOf(spec), stored(spec));
    // throughput once consuming: from the end of the first flush to the end of the last (the group join excluded)
    const [first, ...rest] = flushes.filter((f) => f.records > 0);
    const seconds = (rest[rest.length - 1]!.at - first!.at) / 1000;
    const records = rest.reduce((n, f) => n + f.records, 0);
    console.log(`redis sink: ${total} records in ${flushes.length} flushes; ${Math.round(records / seconds)} records/s after the first flush`);
    const status = runner.status();
    expect(status).toMatchObject({ state: 'running', breaker: 'closed', recordsWritten: total });
    expect(status.partitions.every((p) => p.lag === 0)).toBe(true);
    await runner.stop();
    await expectKeysExact(spec.prefix!, { positions: pos.expected, routing: routing.expected });
  });

  it('ids holding the key separator: tenant "a:b" with conversation "c" and tenant "a" with "b:c" get keys of their own', async () => {
    const spec = await setup('separator');
    const base = routingDecisions(1, 81).records[0]!.value;
    const decisions = [
      { ...base, tenantId: 'a:b', conversationId: 'c', agentId: 'agent-1' },
      { ...base, tenantId: 'a', conversationId: 'b:c', agentId: 'agent-2' },
      { ...base, tenantId: 'a%3Ab', conversationId: 'c', agentId: 'agent-3' }, // already looks escaped
    ];
    await produceTransactional([{ topic: spec.topics.routingDecisions!, partitions: PARTITIONS, records: decisions.map((v) => ({ key: v.tenantId, value: v })) }]);
    const runner = startRunner(spec);
    await runner.start();
    await waitUntilStored('every offset stored', [spec.topics.routingDecisions!], stored(spec));
    await runner.stop();
    const keys = decisions.map((d) => redisKeys.routingDecision(spec.prefix!, d.tenantId, d.conversationId));
    expect(new Set(keys).size).toBe(3);
    const stored3 = await scope.control.mget(...keys);
    expect(stored3.map((t) => (JSON.parse(t!) as { agentId: string }).agentId)).toEqual(['agent-1', 'agent-2', 'agent-3']);
    expect(redisKeys.routingDecision('p', 'tenant-1', 'conv-9')).toBe('p:routing-decision:tenant-1:conv-9'); // ordinary ids unchanged
  });

  it('SIGKILL mid-batch (as the flush of a batch begins), several times: the keys end exact', async () => {
    const spec = await setup('kill');
    spec.slowMs = 200; // the wait before WATCH: the kill lands inside it
    const pos = positions(8000, 71);
    const routing = routingDecisions(6000, 72);
    const inputs = [
      { topic: spec.topics.positions!, partitions: PARTITIONS, records: pos.records },
      { topic: spec.topics.routingDecisions!, partitions: PARTITIONS, records: routing.records },
    ];
    // five waves: each worker that is killed has records arriving while it runs
    const wave = (i: number) => inputs.map((input) => ({ ...input, records: input.records.slice((i * input.records.length) / 5, ((i + 1) * input.records.length) / 5) }));
    const start = (slowMs = spec.slowMs) => scope.child('test/fixtures/sink-worker.ts', { SINK: JSON.stringify({ ...spec, slowMs }), BATCH_SIZE: '150', FLUSH_MS: '50' });
    // a few batches of each worker are stored first (more each round), then it dies as the next one begins
    const killedMidBatch = await killAtFlushBeginRounds(4, start, (round) => produceTransactional(wave(round), { perTransaction: 300, pauseMs: 30 }));
    expect(killedMidBatch).toBeGreaterThanOrEqual(3);
    await produceTransactional(wave(4), { perTransaction: 300 });
    await storeAllThenStop(start(0), topicsOf(spec), stored(spec)); // nothing left to aim at: the last one writes at full speed
    await expectKeysExact(spec.prefix!, { positions: pos.expected, routing: routing.expected });
  }, 300_000);

  it('a worker frozen holding a batch (SIGSTOP) wakes after its partitions moved and were written: the WATCHed offsets refuse its stale batch', async () => {
    const spec = await setup('zombie');
    spec.slowMs = 1000; // A's wait before WATCH: the test freezes A inside it
    const pos = positions(6000, 131);
    const routing = routingDecisions(4000, 132);
    const inputs = [
      { topic: spec.topics.positions!, partitions: PARTITIONS, records: pos.records },
      { topic: spec.topics.routingDecisions!, partitions: PARTITIONS, records: routing.records },
    ];
    const half = (i: number) => inputs.map((input) => ({ ...input, records: input.records.slice((i * input.records.length) / 2, ((i + 1) * input.records.length) / 2) }));
    await produceTransactional(half(0), { perTransaction: 300 });
    const start = () => scope.child('test/fixtures/sink-worker.ts', { SINK: JSON.stringify(spec), BATCH_SIZE: '200', FLUSH_MS: '50' });
    const a = start();
    await a.waitForOutput(/"event":"flush-begin","records":[1-9]/, 60_000); // polled every 100 ms: inside the 1 s wait
    a.kill('SIGSTOP'); // inside the wait: A holds a batch it has not written
    const b = start();
    await b.waitForOutput(/"event":"running"/, 60_000);
    // B owns every partition and writes all of the first half, A's batch included: A's batch is now stale for sure
    await waitUntilStored('the first half stored by B', topicsOf(spec), stored(spec), 120_000);
    a.kill('SIGCONT');
    await produceTransactional(half(1), { perTransaction: 300 });
    await waitUntilStored('every offset stored', topicsOf(spec), stored(spec), 120_000);
    await a.waitForOutput(/another consumer moved the offsets|"alreadyApplied":true/, 30_000);
    a.kill('SIGTERM');
    b.kill('SIGTERM');
    expect(await a.waitExit()).toBe(0);
    expect(await b.waitExit()).toBe(0);
    await expectKeysExact(spec.prefix!, { positions: pos.expected, routing: routing.expected });
  }, 180_000);

  it('connections killed under load: the breaker and status report the outage, the sink recovers, the keys are exact', async () => {
    const spec = await setup('cut');
    spec.slowMs = 30;
    const pos = positions(6000, 81);
    const routing = routingDecisions(4000, 82);
    const producing = produceTransactional(
      [
        { topic: spec.topics.positions!, partitions: PARTITIONS, records: pos.records },
        { topic: spec.topics.routingDecisions!, partitions: PARTITIONS, records: routing.records },
      ],
      { perTransaction: 200, pauseMs: 40 },
    );
    const runner = startRunner(spec, { batchSize: 200 });
    const history = recordHistory(runner);
    await runner.start();
    await waitFor('a first flush', () => runner.status().batches > 0, 30_000, 50);
    await sustainedOutages(runner, history, () => killSinkConnections(scope.control, spec.name));
    expect(await scope.control.ping()).toBe('PONG'); // our own connection was never cut
    await producing;
    await waitUntilStored('every offset stored', topicsOf(spec), stored(spec), 120_000);
    await runner.stop();
    await expectKeysExact(spec.prefix!, { positions: pos.expected, routing: routing.expected });
  }, 180_000);

  it('records of aborted transactions never land; the offsets pass over them', async () => {
    const spec = await setup('abort');
    const pos = positions(900, 91);
    const routing = routingDecisions(600, 92);
    const third = <T,>(list: readonly T[], i: number) => list.slice(i * (list.length / 3), (i + 1) * (list.length / 3));
    const inputs = (i: number) => [
      { topic: spec.topics.positions!, partitions: PARTITIONS, records: third(pos.records, i) },
      { topic: spec.topics.routingDecisions!, partitions: PARTITIONS, records: third(routing.records, i) },
    ];
    await produceTransactional(inputs(0), { perTransaction: 100 });
    await produceTransactional(inputs(1), { perTransaction: 100, abort: true });
    await produceTransactional(inputs(2), { perTransaction: 100 });
    await produceTransactional(inputs(1).map((i) => ({ ...i, records: i.records.slice(0, 10) })), { abort: true });
    const runner = startRunner(spec);
    await runner.start();
    await waitUntilStored('every offset stored, past the aborted records', topicsOf(spec), stored(spec));
    await runner.stop();
    const expectedPos = new Map<string, (typeof pos.rows)[number]>();
    for (const i of [0, 2]) for (const row of third(pos.rows, i)) expectedPos.set(`${row.accountId}|${row.instrument}`, row);
    const expectedRouting = new Map<string, (typeof routing.records)[number]['value']>();
    for (const i of [0, 2]) for (const r of third(routing.records, i)) expectedRouting.set(decisionKey(r.value), r.value);
    await expectKeysExact(spec.prefix!, { positions: expectedPos, routing: expectedRouting });
  });

  it('a stale batch (zombie) is refused by the WATCHed offsets; a retried one is recognised as applied', async () => {
    const prefix = unique('weirtest-zombie');
    prefixes.push(prefix);
    const sink = new RedisSink({ name: unique('redis-zombie'), prefix, writers: { t: redisWriters.positions() } });
    await sink.init();
    try {
      const values = positions(3, 101).records;
      const rec = (i: number) => ({ topic: 't', partition: 0, offset: BigInt(i), key: values[i]!.key, value: values[i]!.value, timestamp: 0, headers: {} });
      sink.add(rec(0));
      expect(await sink.flush(sink.takeBatch(), [{ topic: 't', partition: 0, expected: null, next: 1n }])).toEqual({ rows: 1, alreadyApplied: false });
      sink.add(rec(0));
      expect(await sink.flush(sink.takeBatch(), [{ topic: 't', partition: 0, expected: null, next: 1n }])).toEqual({ rows: 0, alreadyApplied: true });
      sink.add(rec(1));
      await sink.flush(sink.takeBatch(), [{ topic: 't', partition: 0, expected: 1n, next: 2n }]);
      sink.add(rec(2));
      await expect(sink.flush(sink.takeBatch(), [{ topic: 't', partition: 0, expected: 1n, next: 3n }])).rejects.toThrow(OffsetConflictError);
      expect(await sink.committedOffsets([{ topic: 't', partition: 0 }, { topic: 't', partition: 1 }])).toEqual(
        new Map([
          ['t:0', 2n],
          ['t:1', null],
        ]),
      );
      const v2 = values[2]!.value;
      const held = await scope.control.hget(`${prefix}:position:${v2.accountId}`, v2.instrument);
      // the zombie's record did not land (unless an earlier record of the same key holds the same value)
      expect(held === null || JSON.parse(held).lastTradeId !== v2.lastTradeId).toBe(true);
    } finally {
      await sink.destroy();
      await sink.destroy();
    }
  });
});
