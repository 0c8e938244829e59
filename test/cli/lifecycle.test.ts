/**
 * The operator's path through the real CLI, on the real broker and registry:
 * produce → deploy (2 workers and the Postgres and Redis sinks) → status → SIGTERM → replay --dry-run → replay
 * --to-earliest → deploy → the outputs are re-emitted, and the sinks' tables and keys hold each of them once.
 *
 * The application id is unique per run (WEIR_APP_PREFIX), but the topics are the catalog's own (`trades`,
 * `positions`, `ledger-entries`): the topologies take their names from the catalog. So the test starts by deleting
 * them, as the main job's reset does (cli/demo/reset.ts) — a fresh application would otherwise read every earlier
 * run's trades, and the test would slow down run after run. It must not run at the same time as another user of
 * these topics on the same broker (the main job, another test run).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { PartitionReader } from '../../runtime/partition-reader.js';
import { kafka, waitFor, withAdmin } from '../helpers/kafka.js';
import { cliEnv, lines, removeCliDirs, weir, WeirProcess } from './cli.js';
import type { ApplicationStatus } from '../../cli/commands/status.js';
import type pg from 'pg';
import type { Redis } from 'ioredis';
import { deleteKeys, dropSchema, PG_URL, pgClient, redisClient } from '../sinks/support.js';
import { avroSerdesFor } from '../../topologies/index.js';
import { SchemaRegistryClient } from '../../schemas/registry-client.js';
import { formatDecimal } from '../../schemas/decimal.js';
import { Scale, type Position } from '../../schemas/types.js';
import { keysStartingWith } from '../../sinks/redis/keys.js';
import { registryUrl } from '../helpers/registry.js';

const prefix = `clitest-${randomUUID().slice(0, 8)}-`;
const schema = prefix.replace(/-/g, '_').replace(/_+$/, '');
const env = cliEnv(prefix, { DATABASE_URL: PG_URL, WEIR_PG_SCHEMA: schema, WEIR_REDIS_PREFIX: schema });
let control: pg.Client;
let redis: Redis;
const applicationId = `${prefix}weir-trades`;
const started: WeirProcess[] = [];

/** Kill what a test left running: its deploys, and every worker with a run file. */
async function killLeftovers(): Promise<void> {
  for (const p of started.splice(0)) p.kill('SIGKILL');
  const runDir = path.join(env.WEIR_RUN_DIR!, applicationId);
  let files: string[] = [];
  try {
    files = readdirSync(runDir).filter((f) => f.endsWith('.json'));
  } catch {
    return; // nothing ran
  }
  const pids = files.map((f) => (JSON.parse(readFileSync(path.join(runDir, f), 'utf8')) as { pid: number }).pid);
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL');
  await waitFor('the killed workers to be gone', () => !pids.some(alive), 10_000, 50);
}

afterEach(killLeftovers);
afterAll(async () => {
  await killLeftovers();
  removeCliDirs();
  if (control) {
    await dropSchema(control, schema);
    await control.end();
  }
  if (redis) {
    await deleteKeys(redis, schema);
    redis.disconnect();
  }
});

const TOPICS = ['trades', 'positions', 'ledger-entries'];

beforeAll(async () => {
  control = await pgClient();
  redis = redisClient();
  await withAdmin(async (admin) => {
    const existing = (await admin.listTopics()).filter((t) => TOPICS.includes(t));
    if (existing.length > 0) await admin.deleteTopics({ topics: existing, timeout: 30_000 });
    await waitFor('the trades topics to be deleted', async () => !(await admin.listTopics()).some((t) => TOPICS.includes(t)), 30_000, 200);
  });
});

async function status(): Promise<ApplicationStatus> {
  const r = await weir(['status', 'trades', '--json'], env);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { applications: ApplicationStatus[] }).applications[0]!;
}

async function endOffsets(topic: string): Promise<Map<number, number>> {
  return withAdmin(async (admin) => {
    if (!(await admin.listTopics()).includes(topic)) return new Map();
    return new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, Number(o.high)]));
  });
}

/**
 * Committed records (read_committed; transaction markers are not records) written to `topic` after `from`.
 * A worker's last transaction can be committed for its group (no lag) a moment before its markers reach this topic:
 * the read waits for it (`settleMs`) instead of stopping below it.
 */
async function recordsSince(topic: string, from: Map<number, number>): Promise<number> {
  const ends = await endOffsets(topic);
  const reader = new PartitionReader(kafka());
  let n = 0;
  try {
    for (const [partition, end] of ends) {
      const start = from.get(partition) ?? 0;
      if (end > start) await reader.read(topic, partition, start, (messages) => void (n += messages.length), { settleMs: 30_000 });
    }
  } finally {
    await reader.close();
  }
  return n;
}

/** What the sinks hold: ledger rows, and positions (account/instrument → quantity) in Postgres and in Redis. */
async function sinkContents(): Promise<{ ledgerRows: number; pgPositions: Record<string, string>; redisPositions: Record<string, string> }> {
  const ledger = await control.query<{ n: string }>(`SELECT count(*) AS n FROM ${schema}.ledger_entries`);
  const rows = await control.query<{ account_id: string; instrument: string; quantity: string }>(`SELECT account_id, instrument, quantity::text AS quantity FROM ${schema}.positions`);
  const pgPositions = Object.fromEntries(rows.rows.map((r) => [`${r.account_id}/${r.instrument}`, r.quantity]));
  const redisPositions: Record<string, string> = {};
  for await (const keys of keysStartingWith(redis, `${schema}:position:`)) {
    for (const key of keys) {
      const account = key.slice(`${schema}:position:`.length);
      for (const [instrument, text] of Object.entries(await redis.hgetall(key))) redisPositions[`${account}/${instrument}`] = String((JSON.parse(text) as { quantity: string }).quantity);
    }
  }
  return { ledgerRows: Number(ledger.rows[0]!.n), pgPositions, redisPositions };
}

/**
 * The whole positions topic in one pass (committed records, waiting for a last commit like recordsSince): how many
 * records it holds, and the last record of each account/instrument (its quantity, as text).
 */
async function latestPositions(): Promise<{ records: number; latest: Record<string, string> }> {
  const latest: Record<string, string> = {};
  let records = 0;
  const reader = new PartitionReader(kafka());
  const serde = avroSerdesFor(new SchemaRegistryClient({ url: registryUrl() }))<Position>('positions');
  try {
    for (const [partition, end] of await endOffsets('positions')) {
      if (end === 0) continue;
      await reader.read('positions', partition, 0, async (messages) => {
        records += messages.length;
        for (const m of messages) {
          const v = await serde.deserialize(m.value!, { topic: 'positions' } as never);
          latest[`${v.accountId}/${v.instrument}`] = formatDecimal(v.quantity, Scale.quantity);
        }
      }, { settleMs: 30_000 });
    }
  } finally {
    await reader.close();
  }
  return { records, latest };
}

function deploy(args: string[]): WeirProcess {
  const p = new WeirProcess(['deploy', 'trades', ...args], env);
  started.push(p);
  return p;
}

/** `members` workers in a stable group with no lag, every process ready, and both sinks running with no lag. */
async function drained(members: number): Promise<ApplicationStatus> {
  let last: ApplicationStatus | undefined;
  await waitFor(
    `${members} members, every worker ready and no lag, both sinks caught up`,
    async () => {
      last = await status();
      const workers = last.processes.filter((p) => p.role === 'worker');
      return (
        last.group.state === 'Stable' &&
        last.group.members.length === members &&
        last.totalLag === 0 &&
        workers.length === members &&
        last.processes.every((p) => p.ready === true) &&
        last.sinks.length === 2 &&
        last.sinks.every((x) => x.state === 'running' && x.breaker === 'closed' && x.lag === 0)
      );
    },
    120_000,
    500,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last status: ${JSON.stringify(last)}`);
  });
  return last!;
}

describe('weir: produce, deploy, status, stop, replay, deploy again (real broker and registry)', () => {
  it('runs the whole path and re-emits the outputs after a replay', async () => {
    // produce: a generated stream with dead-letter material in it
    const produced = await weir(['produce', '--generate', 'trades', '--count', '1500', '--malformed', '0.02'], env, { timeoutMs: 60_000 });
    expect(produced.code, produced.stderr).toBe(0);
    const summary = /^produced 1500 records to trades in [\d.]+ s \(\d+\/s\): \d+ events, \d+ duplicates, ([1-9]\d*) malformed; seed \d+$/m.exec(produced.stdout);
    expect(summary, produced.stdout).not.toBeNull();
    const malformed = Number(summary![1]);
    expect(produced.stderr).toContain('created topic trades (6 partitions)');

    // deploy 2 workers; one line when ready
    const first = deploy(['--instances', '2']);
    await first.waitForStdout(/^trades is running: 2 workers and 2 sinks ready in [\d.]+ s \(application clitest-[\w-]+weir-trades; (http:\/\/127\.0\.0\.1:\d+(, )?){4}\); Ctrl-C stops it$/m, 120_000);
    expect(lines(first.stdout)).toHaveLength(1);
    expect(first.stderr).toContain('created topic positions (6 partitions, compacted)');
    expect(first.stderr).toContain('created topic ledger-entries (6 partitions)');

    // status: 2 members sharing the 6 tasks, all running, no lag in the end, dead letters counted
    const st = await drained(2);
    expect(st.applicationId).toBe(applicationId);
    expect(st.group.state).toBe('Stable');
    const tasks = st.group.members.flatMap((m) => m.tasks).sort();
    expect(tasks).toEqual(['0_0', '0_1', '0_2', '0_3', '0_4', '0_5']);
    expect(st.group.members.every((m) => m.tasks.length === 3)).toBe(true);
    const workers = st.processes.filter((p) => p.role === 'worker');
    expect(st.group.members.map((m) => m.pid).sort()).toEqual(workers.map((p) => p.pid).sort());
    expect(st.processes.filter((p) => p.role === 'sink')).toHaveLength(2);
    expect(st.sinks.map((x) => [x.name, x.kind]).sort()).toEqual([
      [`${applicationId}-postgres`, 'postgres'],
      [`${applicationId}-redis`, 'redis'],
    ]);
    // each sink process serves its metrics: batch latency, lag per partition, breaker state
    for (const sinkProcess of st.processes.filter((p) => p.role === 'sink')) {
      const metrics = await (await fetch(`${sinkProcess.url}/metrics`)).text();
      expect(metrics).toMatch(/^weir_sink_batch_duration_seconds_count\{sink="clitest-[\w-]+"\} [1-9]/m);
      expect(metrics).toMatch(/^weir_sink_lag\{sink="clitest-[\w-]+",topic="positions",partition="0"\} 0$/m);
      expect(metrics).toMatch(/^weir_sink_breaker_state\{sink="clitest-[\w-]+",state="closed"\} 1$/m);
    }
    for (const p of workers) {
      const d = p.details as { tasks: Array<{ id: string; state: string }> };
      expect(d.tasks.map((t) => t.state)).toEqual(['RUNNING', 'RUNNING', 'RUNNING']);
    }
    expect(st.lag).toHaveLength(6);
    expect(st.lag.filter((l) => l.lag !== 0 || (l.end > 0 && l.committed !== l.end))).toEqual([]);
    expect(st.deadLetters.topic).toBe(`${applicationId}-dead-letters`);
    // every malformed record is dead-lettered (and trades the positions refuse, e.g. a stale version)
    expect(st.deadLetters.count).toBeGreaterThanOrEqual(malformed);
    expect(st.lag.reduce((sum, l) => sum + l.end, 0)).toBe(1500);
    const text = await weir(['status', 'trades'], env);
    expect(text.stdout).toContain(`trades (application ${applicationId})`);
    expect(text.stdout).toMatch(/group: Stable, 2 members/);
    expect(text.stdout).toMatch(/lag: 0 records/);
    expect(text.stdout).toMatch(/tasks: 0_\d RUNNING, 0_\d RUNNING, 0_\d RUNNING/);
    expect(text.stdout).toContain(`${applicationId}-postgres (postgres)  running, breaker closed, lag 0`);
    expect(text.stdout).toContain(`${applicationId}-redis (redis)  running, breaker closed, lag 0`);

    // while it runs: a second deploy and a replay are refused, in one sentence each
    const [twice, early] = await Promise.all([weir(['deploy', 'trades'], env), weir(['replay', 'trades', '--to-earliest', '--dry-run'], env)]);
    expect(twice.code).toBe(1);
    expect(lines(twice.stderr)).toEqual([expect.stringMatching(/^weir: trades \(clitest-[\w-]+\) already runs here: pid \d+(, \d+)+; stop it first/)]);
    expect(early.code).toBe(1);
    expect(lines(early.stderr)).toEqual([expect.stringMatching(/^weir: the topology '.*' still has 2 live member\(s\) in its consumer group; stop its workers first$/)]);

    // SIGTERM: every worker commits and leaves the group, every sink flushes and leaves; exit 0
    const stopAt = Date.now();
    first.kill('SIGTERM');
    expect(await first.waitExit(30_000)).toEqual({ code: 0, signal: null });
    expect(Date.now() - stopAt).toBeLessThan(30_000);
    expect(first.stderr).toMatch(/SIGTERM: stopping 4 processes of trades…\ntrades stopped in [\d.]+ s/);
    const stopped = await status();
    expect(stopped.group.members).toEqual([]);
    expect(stopped.processes).toEqual([]);
    expect(stopped.totalLag).toBe(0);
    const { records: positions1, latest } = await latestPositions();
    const ledger1 = await recordsSince('ledger-entries', new Map());
    expect(positions1).toBeGreaterThan(0);
    expect(ledger1).toBeGreaterThan(0);
    // the sinks: every ledger entry once in Postgres; the positions in Postgres and Redis equal the last record of
    // each (account, instrument) on the positions topic
    const tables = await sinkContents();
    expect(tables.ledgerRows).toBe(ledger1);
    expect(tables.pgPositions).toEqual(latest);
    expect(tables.redisPositions).toEqual(latest);

    // replay: the plan first, nothing changed on a dry run
    const dry = await weir(['replay', 'trades', '--to-earliest', '--dry-run'], env);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`replay of '${applicationId}':`);
    // to the earliest offset: nothing to rebuild, everything processed again
    expect(dry.stdout).toMatch(/trades\/0: start from empty state, then process 0\.\.\d+ again \(\d+ records\)/);
    expect(dry.stdout).toMatch(/dry run: nothing was changed$/m);
    expect((await status()).totalLag).toBe(0);

    const replay = await weir(['replay', 'trades', '--to-earliest'], env, { timeoutMs: 120_000 });
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toMatch(/^replayed trades \(application clitest-[\w-]+\) in [\d.]+ s: state rebuilt from 0 records, offsets moved to the replay point/m);
    expect((await status()).totalLag).toBe(1500);

    // deploy again (detached this time): the outputs are emitted again, exactly as many
    const positionsMid = await endOffsets('positions');
    const ledgerMid = await endOffsets('ledger-entries');
    const again = await weir(['deploy', 'trades', '--detach'], env, { timeoutMs: 120_000 });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^trades is running: 1 worker and 2 sinks ready in [\d.]+ s .*detached: weir status trades, weir stop trades$/m);
    const running = await drained(1);
    expect(running.group.members[0]!.tasks).toEqual(['0_0', '0_1', '0_2', '0_3', '0_4', '0_5']);
    expect(await recordsSince('positions', positionsMid)).toBe(positions1);
    expect(await recordsSince('ledger-entries', ledgerMid)).toBe(ledger1);
    // the sinks wrote the replayed outputs over the same rows and keys: still each entry once, same positions
    expect(await sinkContents()).toEqual(tables);

    const stop = await weir(['stop', 'trades'], env);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout).toMatch(/^stopped 3 processes of trades in [\d.]+ s$/m);
    expect((await status()).group.members).toEqual([]);
  }, 300_000);

  it('reports a worker that dies, and exits when none is left', async () => {
    const d = deploy([]);
    await d.waitForStdout(/^trades is running: 1 worker and 2 sinks ready/m, 120_000);
    const st = await drained(1);
    const worker = st.processes.find((p) => p.role === 'worker')!;
    process.kill(worker.pid, 'SIGKILL');
    expect((await d.waitExit(30_000)).code).toBe(1);
    expect(d.stderr).toMatch(new RegExp(`worker 0 \\(pid ${worker.pid}\\) exited unexpectedly with signal SIGKILL`));
    expect(d.stderr).toMatch(/no worker of trades is left; stopping its sinks and exiting/);
    expect((await status()).processes).toEqual([]);
  }, 180_000);
});
