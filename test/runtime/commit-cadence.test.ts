import { describe, expect, it } from 'vitest';
import pino from 'pino';
import type { CommitInfo } from '../../runtime/task.js';
import { runningSumTopology } from '../fixtures/running-sum.js';
import { createTopics, drained, kafka, produce, unique, waitFor, withAdmin } from '../helpers/kafka.js';
import { expectExactSums, makeInputs, readSumOutputs } from '../helpers/running-sum-check.js';
import { workerFactory } from '../helpers/workers.js';
import { partitionForKey } from '../../runtime/partitioner.js';
import { taskIdOf } from '../../runtime/assignor.js';

const newWorker = workerFactory('cadence', { guarantee: 'exactly_once', logger: pino({ level: 'warn' }) });

async function committedOffsets(groupId: string, topic: string): Promise<Map<number, number>> {
  return withAdmin(async (admin) => {
    const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return new Map((t?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
  });
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

describe('Commit cadence on the real broker (exactly_once)', () => {
  it('commits on the record-count bound, never more than the bound per transaction', async () => {
    const input = unique('cadence-in');
    const output = unique('cadence-out');
    const app = unique('cadence-app');
    const partitions = 2;
    const bound = 1000;
    await createTopics([
      { topic: input, partitions },
      { topic: output, partitions },
    ]);
    // Produced before the worker starts, so each partition's records arrive in fetches far larger than the bound.
    const inputs = makeInputs(5000, 400);
    await produce(input, partitions, inputs.map((i) => ({ key: i.key, value: JSON.stringify(i.value) })));
    const perPartition = new Map<number, number>();
    for (const i of inputs) {
      const p = partitionForKey(Buffer.from(i.key), partitions);
      perPartition.set(p, (perPartition.get(p) ?? 0) + 1);
    }
    for (const n of perPartition.values()) expect(n % bound).toBeGreaterThan(0);

    const worker = newWorker({
      applicationId: app,
      topology: runningSumTopology({ input, output, partitions }),
      // far longer than the test: every commit before stop() comes from the record bound
      commitIntervalMs: 600_000,
      commitMaxRecords: bound,
    });
    const commits: CommitInfo[] = [];
    const processed = new Map<string, number>();
    worker.on('task.committed', (info) => commits.push(info));
    worker.on('processed', (info) => processed.set(info.taskId, (processed.get(info.taskId) ?? 0) + info.records));
    await worker.start();

    const full = (p: number) => Math.floor(perPartition.get(p)! / bound) * bound;
    const committedBy = (p: number) => sum(commits.filter((c) => c.taskId === taskIdOf(0, p)).map((c) => c.records));
    await waitFor(
      'every partition to process its input and commit its whole multiples of the bound',
      () => [...perPartition].every(([p, n]) => processed.get(taskIdOf(0, p)) === n && committedBy(p) >= full(p)),
      120_000,
      200,
    );
    // The remainder below the bound is processed but stays in the open transaction: no interval commit takes it.
    await new Promise((r) => setTimeout(r, 1500));
    const beforeStop = [...commits];
    expect(beforeStop.map((c) => c.records)).toEqual(beforeStop.map(() => bound));
    for (const p of perPartition.keys()) expect(committedBy(p)).toBe(full(p));
    expect(await committedOffsets(app, input)).toEqual(new Map([...perPartition.keys()].map((p) => [p, full(p)])));
    expect(await drained(app, input)).toBe(false);

    // Stopping commits the remainder.
    await worker.stop();
    const lastCommits = commits.slice(beforeStop.length);
    expect(lastCommits.map((c) => [c.taskId, c.records]).sort()).toEqual(
      [...perPartition].map(([p, n]) => [taskIdOf(0, p), n - full(p)]).sort(),
    );
    expect(await drained(app, input)).toBe(true);
    expectExactSums(inputs, await readSumOutputs(output, partitions));
  }, 180_000);

  it('commits about every 100 ms by default while records trickle in', async () => {
    const input = unique('trickle-in');
    const output = unique('trickle-out');
    const app = unique('trickle-app');
    await createTopics([
      { topic: input, partitions: 1 },
      { topic: output, partitions: 1 },
    ]);
    const worker = newWorker({ applicationId: app, topology: runningSumTopology({ input, output, partitions: 1 }) });
    const commits: CommitInfo[] = [];
    worker.on('task.committed', (info) => commits.push(info));
    await worker.start();
    await waitFor('the worker to run its task', () => worker.ready, 60_000, 100);

    // One record every 20 ms for about 2 s.
    const inputs = makeInputs(100, 7);
    const producer = kafka().producer({ allowAutoTopicCreation: false });
    await producer.connect();
    try {
      for (const i of inputs) {
        await produce(input, 1, [{ key: i.key, value: JSON.stringify(i.value) }], producer);
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await producer.disconnect();
    }
    await waitFor('the input to drain', () => drained(app, input), 60_000, 200);
    await worker.stop();

    expect(sum(commits.map((c) => c.records))).toBe(inputs.length);
    const span = commits[commits.length - 1]!.committedAt - commits[0]!.committedAt;
    const gaps = commits.slice(1).map((c, i) => c.committedAt - commits[i]!.committedAt);
    const sorted = [...gaps].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    const detail = { span, commits: commits.length, gaps, durations: commits.map((c) => c.durationMs) };
    // The interval drives the commits: a 1 s interval would give gaps of 1 s or more, and no interval at all one commit at stop.
    expect(commits.length, JSON.stringify(detail)).toBeGreaterThanOrEqual(6);
    expect(median, JSON.stringify(detail)).toBeLessThan(500);
    // And it is honoured: no commit comes sooner than 100 ms after the one before.
    expect(Math.min(...gaps), JSON.stringify(detail)).toBeGreaterThanOrEqual(100);
    expectExactSums(inputs, await readSumOutputs(output, 1));
  }, 120_000);
});
