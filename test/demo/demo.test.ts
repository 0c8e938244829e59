/**
 * The main job (cli/demo/main.ts) as a user runs it: a child process against the test run's broker and registry, a
 * database and a Redis prefix of its own. It must end with every check of its summary passed, twice in a row (the
 * second run resets what the first left), and stop promptly and cleanly on SIGINT.
 * The demo uses the catalog's fixed topic names and application ids: it deletes and recreates those topics on the
 * test broker.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { unique, withAdmin } from '../helpers/kafka.js';
import { deleteKeys, redisClient } from '../sinks/support.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DATABASE = 'weir_demo_test';
const prefix = unique('weirtest-demo');
const dirs: string[] = [];

afterAll(async () => {
  const redis = redisClient();
  await deleteKeys(redis, prefix).catch(() => undefined);
  await redis.quit();
  const admin = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`).catch(() => undefined);
  await admin.end();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Run {
  proc: ChildProcess;
  stdout: string;
  stderr: string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

function runDemo(args: string[]): Run {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'weir-demo-test-'));
  dirs.push(tmp);
  const proc = spawn(process.execPath, ['--import', 'tsx', 'cli/demo/main.ts', ...args], {
    cwd: root,
    env: {
      ...process.env,
      KAFKA_BROKERS: inject('kafkaBrokers'),
      SCHEMA_REGISTRY_URL: inject('schemaRegistryUrl'),
      DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${DATABASE}`,
      REDIS_URL: 'redis://127.0.0.1:6379/0',
      WEIR_REDIS_PREFIX: prefix,
      WEIR_STATE_DIR: path.join(tmp, 'state'),
      WEIR_RUN_DIR: path.join(tmp, 'run'),
      WEIR_PARTITIONS: '3',
      WEIR_APP_PREFIX: '',
      WEIR_HTTP_PORT: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const run: Run = {
    proc,
    stdout: '',
    stderr: '',
    exit: new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() }))),
  };
  proc.stdout!.on('data', (d: Buffer) => (run.stdout += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (run.stderr += d.toString()));
  return run;
}

async function waitForOutput(run: Run, pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(run.stderr + run.stdout)) {
    if (run.proc.exitCode !== null || run.proc.signalCode !== null) throw new Error(`the demo exited before printing ${pattern}:\n${run.stderr.slice(-3000)}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}:\n${run.stderr.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const num = (text: string | undefined) => Number((text ?? '').replace(/,/g, ''));

/** The numbers a PASS line of the summary reports; fails the test when the line is missing or did not pass. */
function passLine(stdout: string, pattern: RegExp): number[] {
  const line = stdout.split('\n').find((l) => pattern.test(l));
  expect(line, `no summary line matching ${pattern} in\n${stdout}`).toBeDefined();
  expect(line!.trimStart().startsWith('PASS'), line).toBe(true);
  return [...pattern.exec(line!)!].slice(1).map(num);
}

function expectSummaryPassed(run: Run): void {
  const out = run.stdout;
  expect(out, run.stderr.slice(-3000)).toMatch(/^ALL CHECKS PASSED \(8\/8\)/m);
  const inputs = passLine(out, /inputs as sent: .*trades ([\d,]+), payments ([\d,]+)/);
  expect(inputs.every((x) => x > 0)).toBe(true);
  const [entries, currencies, versions] = passLine(out, /ledger balanced: ([\d,]+) entries.* each of (\d+) currencies and ([\d,]+) trade versions/);
  expect(entries).toBeGreaterThan(0);
  expect(currencies).toBeGreaterThan(1);
  expect(versions).toBeGreaterThan(0);
  const [pgPositions, redisPositions, trades] = passLine(out, /positions recomputed: ([\d,]+) positions in Postgres and ([\d,]+) in Redis .* the ([\d,]+) trade events/);
  expect(pgPositions).toBeGreaterThan(0);
  expect(redisPositions).toBe(pgPositions);
  expect(trades).toBeGreaterThan(0);
  const [paymentIds] = passLine(out, /every payment reconciled: each of ([\d,]+) paymentIds/);
  expect(paymentIds).toBeGreaterThan(0);
  const [assigned, , decisions] = passLine(out, /routing: ([\d,]+) conversations assigned in ([\d,]+) tenants, none twice; no agent above capacity or ineligible at any of ([\d,]+) decisions/);
  expect(assigned).toBeGreaterThan(0);
  expect(decisions).toBe(assigned);
  const [agents] = passLine(out, /routing live state in Redis: agent load of ([\d,]+) agents/);
  expect(agents).toBeGreaterThan(0);
  const dead = passLine(out, /dead letters: routing ([\d,]+) .*trades ([\d,]+) .*payments ([\d,]+) /);
  expect(dead.every((d) => d > 0)).toBe(true);
  const dups = passLine(out, /duplicates counted: routing ([\d,]+), trades ([\d,]+), payments ([\d,]+)/);
  expect(dups.every((d) => d > 0)).toBe(true);
  expect(out).toMatch(/WHERE TO LOOK NEXT/);
  expect(out).toContain(`${prefix}:agent-load:`);
  expect(out).toMatch(/Metrics +http:\/\/127\.0\.0\.1:\d+\/metrics/);
}

describe('the main job (npm start)', () => {
  it('deploys, sends a mixed stream and ends with every check of its summary passed', async () => {
    const run = runDemo(['--count', '600', '--malformed', '0.03']);
    const { code } = await run.exit;
    expect(code, `${run.stderr.slice(-4000)}\n${run.stdout}`).toBe(0);
    expectSummaryPassed(run);
    // not a terminal: progress as plain lines
    expect(run.stderr).toMatch(/^\[\d+\.\d s\] produced \d+\/\d+ \| routing \d+\/\d+ in/m);
    expect(run.stderr).toMatch(/stopped cleanly/);
  }, 240_000);

  it('runs again on top of the first run, resetting what it left', async () => {
    const run = runDemo(['--count', '600', '--malformed', '0.03', '--seed', '7']);
    const { code } = await run.exit;
    expect(code, `${run.stderr.slice(-4000)}\n${run.stdout}`).toBe(0);
    const reset = run.stderr.split('\n').find((l) => l.startsWith('reset: '));
    // the applications' groups hold committed offsets; the sinks' keep theirs in the databases (their groups may be gone)
    for (const group of ['weir-routing', 'weir-trades', 'weir-payments']) expect(reset).toContain(group);
    expect(num(/(\d+) Redis keys under/.exec(run.stderr)?.[1])).toBeGreaterThan(0);
    expectSummaryPassed(run);
  }, 240_000);

  it('stops promptly and cleanly on SIGINT: workers commit and leave, sinks flush, exit code 130', async () => {
    const run = runDemo(['--count', '40000']);
    await waitForOutput(run, /producing \d+ records/, 120_000);
    await new Promise((r) => setTimeout(r, 2500));
    const sent = Date.now();
    run.proc.kill('SIGINT');
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no exit within 30 s of SIGINT:\n${run.stderr.slice(-3000)}`)), 30_000));
    const { code, at } = await Promise.race([run.exit, timeout]);
    expect(code, run.stderr.slice(-3000)).toBe(130);
    expect(at - sent).toBeLessThan(30_000);
    expect(run.stderr).toMatch(/SIGINT: stopping/);
    expect(run.stderr).toMatch(/stopped cleanly in [\d.]+ s: workers committed and left their groups, sinks flushed, services released/);
    expect(run.stdout).not.toMatch(/SUMMARY/);
    // every member left its group: nothing waits for a session to time out
    const groups = ['weir-routing', 'weir-trades', 'weir-payments', 'weir-demo-postgres', 'weir-demo-redis'];
    const described = await withAdmin((admin) => admin.describeGroups(groups));
    expect(described.groups.map((g) => [g.groupId, g.members.length]).sort()).toEqual(groups.map((g) => [g, 0]).sort());
  }, 240_000);
});
