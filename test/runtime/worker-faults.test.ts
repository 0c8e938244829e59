import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { partitionForKey, StateDirLockedError, Worker } from '../../index.js';
import { changelogTopicName } from '../../state/store-manager.js';
import { RocksDbBackend } from '../../state/rocksdb-backend.js';
import { StateDirectory } from '../../state/state-directory.js';
import { taskIdOf } from '../../runtime/assignor.js';
import { PartitionReader } from '../../runtime/partition-reader.js';
import { runningSumTopology, type SumInput } from '../fixtures/running-sum.js';
import { brokers, createTopics, drained, kafka, produce, readAll, unique, waitFor, withAdmin } from '../helpers/kafka.js';
import { expectChangelogState, expectExactSums, expectedTotals, makeInputs, readSumOutputs } from '../helpers/running-sum-check.js';
import { ChildWorker, type ChildEvent } from '../helpers/processes.js';
import { TransactionProbe } from '../helpers/transactions.js';

const PARTITIONS = 6;
const STORE = 'sums';
const ALL_TASKS = Array.from({ length: PARTITIONS }, (_, p) => taskIdOf(0, p));
const children: ChildWorker[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.kill('SIGCONT');
    c.kill('SIGKILL');
    await c.waitExit().catch(() => undefined);
  }
});

type Inputs = Array<{ key: string; value: SumInput }>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

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

const toRecords = (inputs: Inputs) => inputs.map((i) => ({ key: i.key, value: JSON.stringify(i.value) }));

type ReadyEvent = ChildEvent & { memberId: string | null; tasks: string[] };
const isReady = (e: ChildEvent): e is ReadyEvent => e.event === 'ready';
const readyWithAll = (e: ChildEvent): e is ReadyEvent => isReady(e) && e.tasks.length === PARTITIONS;
type RestoreEvent = ChildEvent & { task: string; restored: number; next: number; end: number };
const isRestoreOf = (task: string) => (e: ChildEvent): e is RestoreEvent => e.event === 'restore' && e.task === task;
/** The event ending a task's restore: it reached the changelog's end; `restored` counts the records it applied. */
const isRestoreDoneOf = (task: string) => (e: ChildEvent): e is RestoreEvent => isRestoreOf(task)(e) && e.next >= e.end;

/** Produce in the background at a steady pace, so faults land while records are being processed. */
function produceSteadily(topic: string, inputs: Inputs, perChunk = 2000, pauseMs = 100): Promise<void> {
  return (async () => {
    const producer = kafka().producer({ allowAutoTopicCreation: false });
    await producer.connect();
    try {
      for (let i = 0; i < inputs.length; i += perChunk) {
        await produce(topic, PARTITIONS, toRecords(inputs.slice(i, i + perChunk)), producer);
        await sleep(pauseMs);
      }
    } finally {
      await producer.disconnect();
    }
  })();
}

/**
 * Produce in the background until stopped (or `max` records), so input keeps flowing through every fault.
 * `stop()` resolves with everything produced.
 */
function produceUntilStopped(topic: string, keys: number, opts: { perChunk?: number; pauseMs?: number; max?: number } = {}) {
  const { perChunk = 1000, pauseMs = 100, max = 1_000_000 } = opts;
  const produced: Inputs = [];
  let stopped = false;
  const running = (async () => {
    const producer = kafka().producer({ allowAutoTopicCreation: false });
    await producer.connect();
    try {
      while (!stopped && produced.length < max) {
        const chunk = makeInputs(perChunk, keys, produced.length + 1);
        await produce(topic, PARTITIONS, toRecords(chunk), producer);
        produced.push(...chunk);
        await sleep(pauseMs);
      }
    } finally {
      await producer.disconnect();
    }
  })();
  return {
    get count() {
      return produced.length;
    },
    async stop(): Promise<Inputs> {
      stopped = true;
      await running;
      return produced;
    },
  };
}

/** The group's committed offsets on `topic`, summed, and the records still waiting behind them. */
async function groupProgress(groupId: string, topic: string): Promise<{ committed: number; lag: number }> {
  return withAdmin(async (admin) => {
    const ends = await admin.fetchTopicOffsets(topic);
    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
    let committed = 0;
    let lag = 0;
    for (const e of ends) {
      const c = Math.max(0, Number(offsets?.partitions.find((p) => p.partition === e.partition)?.offset ?? -1));
      committed += c;
      lag += Number(e.high) - c;
    }
    return { committed, lag };
  });
}

async function groupMembers(groupId: string): Promise<string[]> {
  return withAdmin(async (admin) => {
    const { groups } = await admin.describeGroups([groupId]);
    return groups[0]!.members.map((m) => m.memberId);
  });
}

/**
 * Freeze the worker (SIGSTOP) at a moment when one of its transactions has written records to `topic` and is still
 * open, and leave it frozen. A look that finds no open transaction lets it go on (SIGCONT) and tries again a little
 * later. The open records are looked at twice, the second time after any request already on its way has landed, so a
 * commit the worker sent just before it froze does not count. Returns the open records per partition.
 */
async function freezeInOpenTransaction(w: ChildWorker, topic: string, probe: TransactionProbe, timeoutMs = 60_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    w.kill('SIGSTOP');
    if (sum(await probe.openRecords(topic, PARTITIONS)) > 0) {
      await sleep(500);
      const open = await probe.openRecords(topic, PARTITIONS);
      if (sum(open) > 0) return open;
    }
    w.kill('SIGCONT');
    if (Date.now() > deadline) throw new Error(`no transaction of the worker was open on ${topic} at any look within ${timeoutMs} ms`);
    await sleep(20 + Math.random() * 200);
  }
}

interface StoreDump {
  changelogOffset: number | null;
  entries: Record<string, string>;
}

/** Every task's sums store in a stopped worker's state directory, read with the RocksDB backend the worker uses. */
async function dumpStores(stateDir: string, app: string): Promise<Record<string, StoreDump>> {
  const dir = new StateDirectory(stateDir, app);
  const tasks = readdirSync(dir.root, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  const out: Record<string, StoreDump> = {};
  for (const task of tasks) {
    const backend = new RocksDbBackend(dir.storeDir(task, STORE));
    await backend.open();
    try {
      const entries: Record<string, string> = {};
      for await (const [k, v] of backend.iterate({})) entries[k.toString('utf8')] = v.toString('utf8');
      out[task] = { changelogOffset: await backend.changelogOffset(), entries };
    } finally {
      await backend.close();
    }
  }
  return out;
}

/**
 * The dump with each store's changelog offset taken to the changelog position it stands for: the offset of the first
 * committed record at or after it, or the changelog's end when there is none. A commit stores the offset after its
 * last record; a restore stores the offset after the last thing it read, which includes the commit's transaction
 * marker: two numbers for the same position. An offset that skipped a record, or stopped short of one, stays apart.
 */
async function atChangelogPosition(app: string, dump: Record<string, StoreDump>): Promise<Record<string, StoreDump>> {
  const reader = new PartitionReader(kafka());
  const out: Record<string, StoreDump> = {};
  try {
    for (const [task, store] of Object.entries(dump)) {
      let first: number | null = null;
      const end = await reader.read(changelogTopicName(app, STORE), Number(task.split('_')[1]), store.changelogOffset, (messages) => {
        first ??= Number(messages[0]!.offset);
      });
      out[task] = { ...store, changelogOffset: first ?? end };
    }
  } finally {
    await reader.close();
  }
  return out;
}

/** The keys of `inputs` per task, by the partition each key goes to. */
function keysPerTask(inputs: Inputs): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>(ALL_TASKS.map((t) => [t, new Set()]));
  for (const i of inputs) out.get(taskIdOf(0, partitionForKey(Buffer.from(i.key), PARTITIONS)))!.add(i.key);
  return out;
}

describe('exactly-once under faults (worker processes, real broker)', () => {
  it('SIGKILL at random points three times, each inside an open transaction: outputs and state hold every input once', async () => {
    const s = await setup('kill');
    const probe = await TransactionProbe.connect();
    try {
      // Input flows from before the first worker starts until after the last kill.
      const producer = produceUntilStopped(s.input, 400);
      const openAtKills: number[] = [];
      for (let round = 0; round < 3; round++) {
        const w = startWorker(s, s.stateDirs[0]!);
        await w.waitForEvent(isReady, 'ready', 90_000);
        const atReady = (await groupProgress(s.app, s.input)).committed;
        await waitFor(`round ${round}: the worker to commit input`, async () => (await groupProgress(s.app, s.input)).committed > atReady, 60_000, 100);
        await sleep(Math.random() * 2000);
        const open = await freezeInOpenTransaction(w, s.output, probe);
        // Work is in flight: the worker committed input since it was ready, more input is waiting, and a transaction
        // with outputs is open.
        const at = await groupProgress(s.app, s.input);
        expect(at.committed, `round ${round}: input committed since ready`).toBeGreaterThan(atReady);
        expect(at.lag, `round ${round}: input waiting when the worker dies`).toBeGreaterThan(0);
        w.kill('SIGKILL');
        expect(await w.waitExit()).toBe('SIGKILL');
        openAtKills.push(sum(open));
      }
      const producedAtLastKill = producer.count;
      await sleep(1000);
      const inputs = await producer.stop();
      expect(inputs.length, 'input still flowing after the last kill').toBeGreaterThan(producedAtLastKill);

      const last = startWorker(s, s.stateDirs[0]!);
      await last.waitForEvent(isReady, 'ready', 90_000);
      await waitFor('the input to drain', () => drained(s.app, s.input), 240_000, 500);
      last.kill('SIGTERM');
      expect(await last.waitExit()).toBe(0);

      const committed = await readSumOutputs(s.output, PARTITIONS);
      expectExactSums(inputs, committed);
      // The killed transactions' outputs are in the topic, aborted: read_uncommitted sees them, read_committed not.
      const uncommitted = await probe.countUncommitted(s.output, PARTITIONS);
      expect(uncommitted - committed.length).toBeGreaterThanOrEqual(sum(openAtKills));
      // The final state, as the compacted changelog holds it, counts every input once too.
      expectChangelogState(inputs, await readAll(changelogTopicName(s.app, STORE), PARTITIONS));
    } finally {
      await probe.close();
    }
  }, 480_000);

  it('a frozen worker (SIGSTOP) is fenced when its tasks move: its late commit fails, it rejoins as a new member; results exact', async () => {
    const s = await setup('zombie');
    const inputs = makeInputs(40_000, 300);
    const producing = produceSteadily(s.input, inputs);
    // A long commit interval keeps a transaction open, so the zombie always has a late commit to make.
    const a = startWorker(s, s.stateDirs[0]!, { COMMIT_INTERVAL_MS: '3000' });
    const aReady = await a.waitForEvent(isReady, 'ready', 90_000);
    expect(aReady.memberId).toEqual(expect.any(String));
    await sleep(1500);
    a.kill('SIGSTOP');
    const b = startWorker(s, s.stateDirs[1]!);
    // B gets every task once A's session has expired.
    await b.waitForEvent(readyWithAll, 'ready with every task', 90_000);
    const before = a.output.length;
    a.kill('SIGCONT');
    const fenced = await a.waitForEvent((e) => e.event === 'fenced', 'a commit failing as fenced', 60_000, before);
    expect(ALL_TASKS).toContain(fenced.task);
    const rejoined = await a.waitForEvent(
      (e): e is ReadyEvent => isReady(e) && e.at > fenced.at && e.memberId !== aReady.memberId && e.tasks.length > 0,
      'ready as a new member with tasks, after the fenced commit',
      90_000,
      before,
    );
    expect(rejoined.memberId).toEqual(expect.any(String));
    await producing;
    await waitFor('the input to drain', () => drained(s.app, s.input), 240_000, 500);
    a.kill('SIGTERM');
    b.kill('SIGTERM');
    expect(await a.waitExit()).toBe(0);
    expect(await b.waitExit()).toBe(0);
    expectExactSums(inputs, await readSumOutputs(s.output, PARTITIONS));
    expectChangelogState(inputs, await readAll(changelogTopicName(s.app, STORE), PARTITIONS));
  }, 400_000);

  it('scales out and in mid-stream: moved tasks restore from the changelog before they process; results exact', async () => {
    const s = await setup('scale');
    const producer = produceUntilStopped(s.input, 300);
    // A long session: if A did not leave the group on its way out, it would still be a member long after it exited.
    const a = startWorker(s, s.stateDirs[0]!, { SESSION_TIMEOUT_MS: '30000' });
    const aReady = await a.waitForEvent(isReady, 'ready', 90_000);
    await sleep(2000);
    const b = startWorker(s, s.stateDirs[1]!);
    await b.waitForEvent((e) => isReady(e) && e.tasks.length > 0, 'ready with tasks', 90_000);
    await sleep(2000);
    const beforeStop = b.output.length;
    const bTasksBefore = b.events().filter(isReady).at(-1)!.tasks;
    expect(await groupMembers(s.app)).toContain(aReady.memberId);
    const producedAtStop = producer.count;
    a.kill('SIGTERM');
    expect(await a.waitExit(15_000)).toBe(0);
    // A left the group: it is gone at once, though its session would have kept it a member for 30 s more.
    expect(await groupMembers(s.app)).not.toContain(aReady.memberId);
    const bAll = await b.waitForEvent(readyWithAll, 'ready with every task', 30_000, beforeStop);
    const moved = bAll.tasks.filter((t) => !bTasksBefore.includes(t));
    expect(moved.length).toBeGreaterThan(0);
    for (const task of moved) {
      const processed = await b.waitForEvent((e) => e.event === 'processed' && e.task === task, `task ${task} processing`, 60_000, beforeStop);
      const restored = await b.waitForEvent(isRestoreDoneOf(task), `task ${task} restored`, 60_000, beforeStop);
      expect(restored.restored, `task ${task}: changelog records restored`).toBeGreaterThan(0);
      expect(restored.at, `task ${task} restored before it processed`).toBeLessThan(processed.at);
    }
    await sleep(1000);
    const inputs = await producer.stop();
    expect(inputs.length, 'input flowing while the tasks moved').toBeGreaterThan(producedAtStop);
    await waitFor('the input to drain', () => drained(s.app, s.input), 240_000, 500);
    b.kill('SIGTERM');
    expect(await b.waitExit()).toBe(0);
    expectExactSums(inputs, await readSumOutputs(s.output, PARTITIONS));
    expectChangelogState(inputs, await readAll(changelogTopicName(s.app, STORE), PARTITIONS));
  }, 400_000);

  it('restores from the stored offset, or from the changelogs after the state directory was deleted: the stores come back equal', async () => {
    const s = await setup('wipe');
    const first = makeInputs(20_000, 200);
    const second = makeInputs(20_000, 200, 20_001);
    const keys = keysPerTask(first);
    await produce(s.input, PARTITIONS, toRecords(first));
    const w1 = startWorker(s, s.stateDirs[0]!);
    await waitFor('phase 1 to drain', () => drained(s.app, s.input), 120_000, 500);
    w1.kill('SIGTERM');
    expect(await w1.waitExit()).toBe(0);
    const before = await dumpStores(s.stateDirs[0]!, s.app);
    expect(Object.keys(before)).toEqual(ALL_TASKS);
    const totals = expectedTotals(first);
    for (const task of ALL_TASKS) {
      expect(before[task]!.changelogOffset).toBeGreaterThan(0);
      const want = Object.fromEntries([...keys.get(task)!].sort().map((k) => [k, totals.get(k)]));
      const got = Object.fromEntries(Object.entries(before[task]!.entries).map(([k, v]) => [k, JSON.parse(v) as unknown]));
      expect(got).toEqual(want);
    }

    // Intact: each store resumes at the offset it holds and finds nothing newer in its changelog.
    const w2 = startWorker(s, s.stateDirs[0]!);
    await w2.waitForEvent(readyWithAll, 'ready with every task', 90_000);
    for (const task of ALL_TASKS) {
      expect(w2.events().find(isRestoreOf(task))?.next, `task ${task} restores from its stored offset`).toBe(before[task]!.changelogOffset);
      expect(w2.events().find(isRestoreDoneOf(task))?.restored, `task ${task}: records restored on an intact store`).toBe(0);
    }
    w2.kill('SIGTERM');
    expect(await w2.waitExit()).toBe(0);
    expect(await dumpStores(s.stateDirs[0]!, s.app)).toEqual(before);

    // Deleted: each store is rebuilt from its changelog's start, reading at least one record per key.
    rmSync(s.stateDirs[0]!, { recursive: true, force: true });
    const w3 = startWorker(s, s.stateDirs[0]!);
    await w3.waitForEvent(readyWithAll, 'ready with every task', 90_000);
    for (const task of ALL_TASKS) {
      expect(w3.events().find(isRestoreOf(task))?.next, `task ${task} restores from the changelog's start`).toBe(0);
      expect(w3.events().find(isRestoreDoneOf(task))?.restored, `task ${task}: records restored after the wipe`).toBeGreaterThanOrEqual(keys.get(task)!.size);
    }
    w3.kill('SIGTERM');
    expect(await w3.waitExit()).toBe(0);
    const rebuilt = await dumpStores(s.stateDirs[0]!, s.app);
    // The same entries, and an offset at the same changelog position: the end, past every record.
    expect(await atChangelogPosition(s.app, rebuilt)).toEqual(await atChangelogPosition(s.app, before));
    const ends = await withAdmin((admin) => admin.fetchTopicOffsets(changelogTopicName(s.app, STORE)));
    for (const task of ALL_TASKS) {
      expect(rebuilt[task]!.changelogOffset).toBe(Number(ends.find((e) => e.partition === Number(task.split('_')[1]))!.high));
    }

    // And processing goes on from there: phase 2's sums continue from phase 1's.
    await produce(s.input, PARTITIONS, toRecords(second));
    const w4 = startWorker(s, s.stateDirs[0]!);
    await waitFor('phase 2 to drain', () => drained(s.app, s.input), 120_000, 500);
    w4.kill('SIGTERM');
    expect(await w4.waitExit()).toBe(0);
    expectExactSums([...first, ...second], await readSumOutputs(s.output, PARTITIONS));
    expectChangelogState([...first, ...second], await readAll(changelogTopicName(s.app, STORE), PARTITIONS));
  }, 300_000);

  it('refuses a state directory locked by another live worker', async () => {
    const s = await setup('lock');
    const holder = startWorker(s, s.stateDirs[0]!);
    await holder.waitForEvent(isReady, 'ready', 90_000);
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
