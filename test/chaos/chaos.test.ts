/**
 * The chaos suite's CI version (`bench/chaos.ts --short`) as a subprocess: three worker processes per application and
 * their sink processes, SIGKILLed workers and sinks, cut Postgres and Redis connections, a broker restart and
 * malformed records. It must exit 0, and its printed summary must show that every kind of fault happened and that
 * every check — each table and key against a recomputation from the input, the dead-letter topics against the
 * malformed records sent — passed.
 *
 * It runs against the test run's schema registry and a Kafka broker of its own (bench/chaos/broker.ts says why: it
 * restarts that broker), starts with fresh topics there, and uses a Postgres schema, Redis prefix and application-id
 * prefix of its own, removed at the end.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { resetKafka } from '../../infra/kafka.js';
import { CHAOS_KAFKA_HOME } from '../../bench/chaos/broker.js';
import { FAULT_KINDS } from '../../bench/chaos/journal.js';
import { unique } from '../helpers/kafka.js';
import { deleteKeys, dropSchema, PG_URL, pgClient, REDIS, redisClient } from '../sinks/support.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const id = unique('chaostest');
const schema = id.replace(/-/g, '_');

/** Every check the summary must show as passed. */
const CHECKS = [
  'inputs as sent',
  'ledger balanced',
  'positions recomputed',
  'every payment reconciled',
  'routing',
  'routing live state in Redis',
  'dead letters',
  'duplicates counted',
  'outputs exactly once',
  'sinks = output topics',
  'faults injected',
  'no process exited on its own',
];

afterAll(async () => {
  // the run removes all this itself; after a failure it keeps it for a look, and this takes it away
  const redis = redisClient();
  await deleteKeys(redis, id).catch(() => undefined);
  await redis.quit();
  const client = await pgClient();
  await dropSchema(client, schema).catch(() => undefined);
  await client.end();
  await resetKafka(CHAOS_KAFKA_HOME);
}, 60_000);

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runChaos(args: string[], timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', 'bench/chaos.ts', ...args], {
      cwd: root,
      env: {
        ...process.env,
        SCHEMA_REGISTRY_URL: inject('schemaRegistryUrl'),
        DATABASE_URL: PG_URL,
        REDIS_URL: `redis://${REDIS.host}:${REDIS.port}/0`,
        WEIR_PG_SCHEMA: schema,
        WEIR_REDIS_PREFIX: id,
        WEIR_APP_PREFIX: `${id}-`,
        WEIR_PARTITIONS: '6',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const run: Run = { code: null, signal: null, stdout: '', stderr: '' };
    proc.stdout.on('data', (d: Buffer) => (run.stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (run.stderr += d.toString()));
    // past the time limit: SIGINT stops it cleanly (processes, broker), SIGKILL if that does not do
    const timer = setTimeout(() => {
      proc.kill('SIGINT');
      setTimeout(() => proc.kill('SIGKILL'), 60_000).unref();
    }, timeoutMs);
    proc.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ ...run, code, signal });
    });
  });
}

/** The rows of the summary's table: check name → PASS / FAIL / SKIP. */
function checkTable(stdout: string): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const m = /^ {2}(PASS|FAIL|SKIP) {2,}(.+?) {2,}\S/.exec(line);
    if (m) rows.set(m[2]!.trim(), m[1]!);
  }
  return rows;
}

/** The summary's fault line: kind → how often. */
function faultCounts(stdout: string): Map<string, number> {
  const prefix = '  faults  ';
  const line = stdout.split('\n').find((l) => l.startsWith(prefix))?.slice(prefix.length) ?? '';
  return new Map([...line.matchAll(/([A-Za-z ]+): (\d+)/g)].map((m) => [m[1]!.trim(), Number(m[2])]));
}

describe('chaos suite, short version', () => {
  it(
    'kills workers and sinks, cuts database connections, restarts the broker, feeds malformed records, and every check passes',
    async () => {
      const started = Date.now();
      const run = await runChaos(['--short'], 270_000);
      const said = `exit ${run.code ?? run.signal} after ${Math.round((Date.now() - started) / 1000)} s\n--- stdout\n${run.stdout}\n--- stderr (end)\n${run.stderr.slice(-3000)}`;

      const table = checkTable(run.stdout);
      for (const name of CHECKS) expect(table.get(name), `check "${name}"\n${said}`).toBe('PASS');
      expect([...table].filter(([, status]) => status !== 'PASS'), said).toEqual([]);

      const faults = faultCounts(run.stdout);
      for (const kind of FAULT_KINDS) expect(faults.get(kind) ?? 0, `fault "${kind}"\n${said}`).toBeGreaterThan(0);
      expect(faults.get('broker restarted'), said).toBe(1);
      // a line per action, with its time
      expect(run.stdout, said).toMatch(/^\[ *\d+\.\d s\] round 1\/3: SIGKILL /m);
      expect(run.stdout, said).toMatch(/^\[ *\d+\.\d s\] round \d\/3: broker back at /m);

      expect(run.stdout, said).toMatch(/^ALL CHECKS PASSED \(12\/12\)/m);
      expect(run.code, said).toBe(0);
    },
    330_000,
  );
});
