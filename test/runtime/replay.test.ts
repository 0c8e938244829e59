import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Serdes, Worker } from '../../index.js';
import { describePlan, executeReplay, planReplay, ReplayRefusedError } from '../../runtime/replay.js';
import { runningSumTopology, type SumOutput } from '../fixtures/running-sum.js';
import { brokers, createTopics, drained, produce, readAll, unique, waitFor, withAdmin } from '../helpers/kafka.js';
import { expectExactSums, makeInputs } from '../helpers/running-sum-check.js';

const PARTITIONS = 3;
/** Event times near now: records older than the broker's retention (24 h) may be deleted under the test. */
const BASE = Date.now() - 60_000;
const quiet = pino({ level: 'warn' });
const workers: Worker[] = [];
afterAll(async () => {
  for (const w of workers) await w.stop().catch(() => undefined);
});

async function scenario(name: string) {
  const s = { input: unique(`${name}-in`), output: unique(`${name}-out`), app: unique(`${name}-app`), stateDir: mkdtempSync(path.join(os.tmpdir(), 'weir-replay-')) };
  await createTopics([
    { topic: s.input, partitions: PARTITIONS },
    { topic: s.output, partitions: PARTITIONS },
  ]);
  const topology = runningSumTopology({ input: s.input, output: s.output });
  const run = async () => {
    const w = new Worker({ applicationId: s.app, topology, brokers: brokers(), stateDir: s.stateDir, logger: quiet });
    workers.push(w);
    await w.start();
    await waitFor('the input to drain', () => drained(s.app, s.input), 120_000, 300);
    return w;
  };
  return { ...s, topology, run };
}

async function outputs(topic: string) {
  const json = Serdes.json<SumOutput>();
  return (await readAll(topic, PARTITIONS)).map((m) => ({ key: m.key!.toString(), value: json.deserialize(m.value!), partition: m.partition }));
}

describe('replay from an offset (real broker)', () => {
  it('rebuilds state up to the replay point without output, then re-emits exactly the same results', async () => {
    const s = await scenario('replay');
    // Half the keys first appear after the replay point: a worker that kept its old local state would double them.
    const inputs = makeInputs(9_000, 50).map((i, n) => (n >= 4_500 && n % 2 === 0 ? { ...i, key: `late-${i.key}` } : i));
    await produce(s.input, PARTITIONS, inputs.map((i, n) => ({ key: i.key, value: JSON.stringify(i.value), timestamp: BASE + n })));
    const w = await s.run();

    // Live members: refused.
    const target = { kind: 'timestamp' as const, timestamp: BASE + 3_000 };
    await expect(planReplay({ applicationId: s.app, topology: s.topology, brokers: brokers(), target })).rejects.toThrow(/still has 1 live member/);
    await w.stop();

    const before = await outputs(s.output);
    expectExactSums(inputs, before);
    const plan = await planReplay({ applicationId: s.app, topology: s.topology, brokers: brokers(), target });
    expect(describePlan(plan)).toMatch(new RegExp(`${s.input}/0: rebuild state from offsets 0\\.\\.\\d+ without output, then process`));
    const result = await executeReplay({ applicationId: s.app, topology: s.topology, brokers: brokers(), target }, plan);
    expect(result.rebuilt).toBe(3000);
    // Nothing was emitted by the rebuild.
    expect((await outputs(s.output)).length).toBe(before.length);

    // The worker keeps its old local state: the reset marker makes it drop it on restore.
    await s.run();
    const after = await outputs(s.output);
    expect(after.length - before.length).toBe(9_000 - 3_000);
    // Per partition, what came after the old outputs was re-emitted: each equals the original result for its input.
    const original = new Map(before.map((o) => [`${o.key}#${o.value.seq}`, o.value.sum]));
    const tail = [0, 1, 2].flatMap((p) => after.filter((o) => o.partition === p).slice(before.filter((o) => o.partition === p).length));
    expect(tail.filter((o) => original.get(`${o.key}#${o.value.seq}`) !== o.value.sum)).toEqual([]);
    expect(new Set(tail.map((o) => `${o.key}#${o.value.seq}`)).size).toBe(6_000);
  }, 300_000);

  it('refuses when retention no longer reaches back', async () => {
    const s = await scenario('retention');
    await produce(s.input, PARTITIONS, makeInputs(300, 10).map((i) => ({ key: i.key, value: JSON.stringify(i.value) })));
    await withAdmin(async (admin) => {
      await admin.fetchTopicMetadata({ topics: [s.input] }); // kafkajs needs the topic's metadata loaded first
      await admin.deleteTopicRecords({ topic: s.input, partitions: [{ partition: 1, offset: '5' }] });
    });
    const err = await planReplay({ applicationId: s.app, topology: s.topology, brokers: brokers(), target: { kind: 'earliest' } }).catch((e) => e);
    expect(err).toBeInstanceOf(ReplayRefusedError);
    expect(err.message).toBe(`retention no longer reaches back: ${s.input}/1 starts at offset 5, so the state before the replay point cannot be rebuilt`);
  });

  it('finds the replay point of a timestamp', async () => {
    const s = await scenario('bytime');
    const inputs = makeInputs(600, 20);
    await produce(s.input, PARTITIONS, inputs.map((i, n) => ({ key: i.key, value: JSON.stringify(i.value), timestamp: BASE + n })));
    const plan = await planReplay({ applicationId: s.app, topology: s.topology, brokers: brokers(), target: { kind: 'timestamp', timestamp: BASE + 300 } });
    const total = plan.partitions.reduce((n, p) => n + (p.end - p.target), 0);
    expect(total).toBe(300);
  });
});
