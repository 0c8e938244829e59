/**
 * The driver side of a bench child (bench/child.ts): `node --import tsx <entry> '<spec JSON>'`, its result line
 * parsed, its other output passed on to stderr with a label, `ready` when it printed READY_LINE, `send` for the
 * lines it waits for on stdin.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { REPO_ROOT } from '../infra/kafka.js';
import { READY_LINE, RESULT_PREFIX } from './common.js';

export const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));

export interface ChildOptions {
  /** Run under `node --cpu-prof`, profiles into this directory. */
  profileDir?: string | null;
  /** Modules to --import before the entry (experiments). */
  preload?: string[];
}

export interface ChildHandle<R> {
  /** Resolves when the child printed READY_LINE (rejects if it exited first). */
  ready: Promise<void>;
  result: Promise<R>;
  send(line: string): void;
  /** Closes its stdin (a child waiting for `stop` takes that as stop). */
  end(): void;
  kill(): void;
}

export function startChild<R>(entry: string, spec: object, label: string, opts: ChildOptions = {}): ChildHandle<R> {
  const { profileDir } = opts;
  const args = [
    // one profile per thread (the tsx loader runs its hooks in a thread of its own)
    ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
    '--import',
    import.meta.resolve('tsx'),
    ...(opts.preload ?? []).flatMap((f) => ['--import', pathToFileURL(f).href]),
    path.join(BENCH_DIR, entry),
    JSON.stringify(spec),
  ];
  if (profileDir) fs.mkdirSync(profileDir, { recursive: true });
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1', ...(profileDir ? { WEIR_BENCH_PROFILE_DIR: profileDir } : {}) },
  });
  child.stdin.on('error', () => undefined);
  let onReady!: () => void;
  let notReady!: (err: Error) => void;
  const ready = new Promise<void>((res, rej) => {
    onReady = res;
    notReady = rej;
  });
  ready.catch(() => undefined);
  let out = '';
  let resultLine: string | null = null;
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    out += d;
    let nl: number;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      if (line.startsWith(RESULT_PREFIX)) resultLine = line.slice(RESULT_PREFIX.length);
      else if (line === READY_LINE) onReady();
      // anything else goes to stderr, so stdout stays the table (and JSON)
      else if (line.trim()) process.stderr.write(`[${label}] ${line}\n`);
    }
  });
  const result = new Promise<R>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      const err = new Error(`${label} exited with ${code}${resultLine ? '' : ' without a result'}`);
      notReady(err);
      if (code === 0 && resultLine) resolve(JSON.parse(resultLine) as R);
      else reject(err);
    });
  });
  result.catch(() => undefined);
  return {
    ready,
    result,
    send: (line) => void child.stdin.write(`${line}\n`),
    end: () => child.stdin.end(),
    kill: () => void child.kill('SIGKILL'),
  };
}
