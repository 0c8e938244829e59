import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Serdes, StateDirLockedError, Worker } from '../../index.js';
import { runningSumTopology, type SumOutput } from '../fixtures/running-sum.js';
import { brokers, createTopics, drained, kafka, produce, readAll, unique, waitFor } from '../helpers/kafka.js';
import { expectExactSums, makeInputs } from '../helpers/running-sum-check.js';
import { ChildWorker } from '../helpers/processes.js';

const PARTITIONS = 6;
const children: ChildWorker[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.kill('SIGCONT');
    c.kill('SIGKILL');
    await c.waitExit().catch(() => undefined);
  }
});

async function setup(name: string) {
  const s = {
    input: unique(`${name}-in`),
    output: unique(`${name}-out`),
    app: unique(`${name}-app`),
    stateDirs: [mkdtempSync(path.join(os.tmpdir(), 'weir-fault-')), mkdtempSync(path.join(os.tmpdir(), 'weir-fault-'))],
  };
  await createTopics([
    { topic: s.input, partitions: PARTITIONS },
    { topic: s.output, partitions: PARTITIONS },
  ]);
  return s;
}

function startWorker(s: { input: string; output: string; app: string }, stateDir: string, extra: Record<string, string> = {}): ChildWorker {
  const c = new ChildWorker('test/fixtures/sum-worker.ts', {
    KAFKA_BROKERS: brokers(),
    APP_ID: s.app,
    INPUT: s.input,
    OUTPUT: s.output,
    STATE_DIR: stateDir,
    ...extra,
  });
  children.push(c);
  return c;
}

const toRecords = (inputs: ReturnType<typeof makeInputs>) => inputs.map((i) => ({ key: i.key, value: JSON.stringify(i.value) }));

async function outputs(topic: string) {
  const json = Serdes.json<SumOutput>();
  return (await readAll(topic, PARTITIONS)).map((m) => ({ key: m.key!.toString(), value: json.deserialize(m.value!) }));
}

/** Produce in the background at a steady pace, so faults land while records are being processed. */
function produceSteadily(topic: string, inputs: ReturnType<typeof makeInputs>, perChunk = 2000, pauseMs = 100): Promise<void> {
  return (async () => {
    const producer = kafka().producer({ allowAutoTopicCreation: false });
    await producer.connect();
    try {
      for (let i = 0; i < inputs.length; i += perChunk) {
        await produce(topic, PARTITIONS, toRecords(inputs.slice(i, i + perChunk)), producer);
        await new Promise((r) => setTimeout(r, pauseMs));
      }
    } finally {
      await producer.disconnect();
    }
  })();
}

describe('exactly-once under faults (worker processes, real broker)', () => {
  it('SIGKILL at random points three times: every input counted exactly once', async () => {
    const s = await setup('kill');
    const inputs = makeInputs(60_000, 400);
    const producing = produceSteadily(s.input, inputs);
    for (let round = 0; round < 3; round++) {
      const w = startWorker(s, s.stateDirs[0]!);
      await w.waitForOutput(/"event":"ready"/);
      await new Promise((r) => setTimeout(r, 500 + Math.random() * 2500));
      w.kill('SIGKILL');
      expect(await w.waitExit()).toBe('SIGKILL');
    }
    await producing;
    const last = startWorker(s, s.stateDirs[0]!);
    await last.waitForOutput(/"event":"ready"/);
    await waitFor('the input to drain', () => drained(s.app, s.input), 180_000, 500);
    last.kill('SIGTERM');
    expect(await last.waitExit()).toBe(0);
    expectExactSums(inputs, await outputs(s.output));
  }, 400_000);

  it('a frozen worker (SIGSTOP) is fenced when its tasks move, then rejoins; results exact', async () => {
    const s = await setup('zombie');
    const inputs = makeInputs(40_000, 300);
    const producing = produceSteadily(s.input, inputs);
    // A long commit interval keeps a transaction open, so the zombie always has a late commit to make.
    const a = startWorker(s, s.stateDirs[0]!, { COMMIT_INTERVAL_MS: '3000' });
    await a.waitForOutput(/"event":"ready"/);
    await new Promise((r) => setTimeout(r, 1500));
    a.kill('SIGSTOP');
    const b = startWorker(s, s.stateDirs[1]!);
    // B gets every task once A's session has expired.
    await b.waitForOutput(/"event":"ready","tasks":\[("\d+_\d+",?){6}\]/, 60_000);
    const before = a.output.length;
    a.kill('SIGCONT');
    await a.waitForOutput(/fenced|zombies/, 60_000, before);
    await a.waitForOutput(/"event":"ready"/, 60_000, before);
    await producing;
    await waitFor('the input to drain', () => drained(s.app, s.input), 180_000, 500);
    a.kill('SIGTERM');
    b.kill('SIGTERM');
    await a.waitExit();
    await b.waitExit();
    expectExactSums(inputs, await outputs(s.output));
  }, 400_000);

  it('scales out and in mid-stream: moved tasks restore from the changelog; results exact', async () => {
    const s = await setup('scale');
    const inputs = makeInputs(40_000, 300);
    const producing = produceSteadily(s.input, inputs);
    const a = startWorker(s, s.stateDirs[0]!);
    await a.waitForOutput(/"event":"ready"/);
    await new Promise((r) => setTimeout(r, 2000));
    const b = startWorker(s, s.stateDirs[1]!);
    await b.waitForOutput(/"event":"ready","tasks":\["\d/, 60_000);
    await new Promise((r) => setTimeout(r, 2000));
    const beforeStop = b.output.length;
    const stopAt = Date.now();
    a.kill('SIGTERM');
    expect(await a.waitExit(15_000)).toBe(0);
    // A left the group on its way out: B takes every task at once, well before A's session could expire.
    await b.waitForOutput(/"event":"ready","tasks":\[("\d+_\d+",?){6}\]/, 20_000, beforeStop);
    expect(Date.now() - stopAt).toBeLessThan(6_000);
    await producing;
    await waitFor('the input to drain', () => drained(s.app, s.input), 180_000, 500);
    b.kill('SIGTERM');
    expect(await b.waitExit()).toBe(0);
    expectExactSums(inputs, await outputs(s.output));
  }, 400_000);

  it('a deleted state directory comes back from the changelogs', async () => {
    const s = await setup('wipe');
    const first = makeInputs(20_000, 200);
    const second = makeInputs(20_000, 200, 20_001);
    await produce(s.input, PARTITIONS, toRecords(first));
    const w1 = startWorker(s, s.stateDirs[0]!);
    await waitFor('phase 1 to drain', () => drained(s.app, s.input), 120_000, 500);
    w1.kill('SIGTERM');
    expect(await w1.waitExit()).toBe(0);
    rmSync(s.stateDirs[0]!, { recursive: true, force: true });
    await produce(s.input, PARTITIONS, toRecords(second));
    const w2 = startWorker(s, s.stateDirs[0]!);
    await waitFor('phase 2 to drain', () => drained(s.app, s.input), 120_000, 500);
    w2.kill('SIGTERM');
    expect(await w2.waitExit()).toBe(0);
    // Sums in phase 2 continue from phase 1's: only possible if the stores were restored equal.
    expectExactSums([...first, ...second], await outputs(s.output));
  }, 300_000);

  it('refuses a state directory locked by another live worker', async () => {
    const s = await setup('lock');
    const holder = startWorker(s, s.stateDirs[0]!);
    await holder.waitForOutput(/"event":"ready"/);
    const worker = new Worker({
      applicationId: s.app,
      topology: runningSumTopology({ input: s.input, output: s.output }),
      brokers: brokers(),
      stateDir: s.stateDirs[0]!,
      logger: pino({ level: 'silent' }),
    });
    const err = await worker.start().catch((e) => e);
    expect(err).toBeInstanceOf(StateDirLockedError);
    expect(err.message).toContain(`(pid ${holder.proc.pid})`);
  });
});
