/**
 * Starts the members of a deploy as child processes and keeps watch over them.
 * Responsible for:
 * - spawning each `weir worker …` (or sink) child in its own process group, its output appended to
 *   `<run dir>/<role>-<instance>.log`; in the foreground its error lines are also shown, prefixed by the member;
 * - waiting until every member is ready: its run file is there and its /health/readiness answers 200; a member that
 *   exits first fails the deploy with the member's own last error line;
 * - in the foreground: reporting a member that exits unexpectedly, and on stop() sending SIGTERM to all and waiting
 *   for them (SIGKILL after a grace period).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WeirError } from '../../runtime/errors.js';
import { readRunFile, type RunFile } from '../run-files.js';
import type { MemberSpec } from './members.js';

const LAUNCHER = fileURLToPath(new URL('../../bin/weir.mjs', import.meta.url));

export interface Member {
  spec: MemberSpec;
  child: ChildProcess;
  pid: number;
  logFile: string;
  run?: RunFile;
  exited: boolean;
  exitDescription?: string;
  /** The last lines the member wrote that look like errors. */
  lastErrors: string[];
}

export interface SupervisorOptions {
  runDir: string;
  env: Record<string, string>;
  detach: boolean;
  /** Where member error lines and reports go (stderr). */
  report: (line: string) => void;
}

export class DeployFailedError extends WeirError {}

export class Supervisor {
  readonly members: Member[] = [];
  private stopping = false;
  private onExit: ((m: Member) => void) | undefined;

  constructor(private readonly opts: SupervisorOptions) {
    fs.mkdirSync(opts.runDir, { recursive: true });
  }

  start(spec: MemberSpec): Member {
    const logFile = path.join(this.opts.runDir, `${spec.role}-${spec.instance}.log`);
    const args = [LAUNCHER, ...spec.args, '--log', logFile, ...(this.opts.detach ? [] : ['--supervised'])];
    // kafkajs warns about its v2 partitioner change on every producer; weir partitions explicitly (murmur2).
    const env = { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1', ...this.opts.env };
    let child: ChildProcess;
    if (this.opts.detach) {
      const fd = fs.openSync(logFile, 'a');
      child = spawn(process.execPath, args, { env, stdio: ['ignore', fd, fd], detached: true });
      fs.closeSync(fd);
    } else {
      child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    }
    if (child.pid === undefined) throw new DeployFailedError(`could not start ${spec.label}: ${process.execPath} did not run`);
    const member: Member = { spec, child, pid: child.pid, logFile, exited: false, lastErrors: [] };
    if (!this.opts.detach) this.pipeOutput(member);
    // 'close' comes after 'exit' once its output is read, so the member's last words are in lastErrors.
    child.on('close', (code, signal) => {
      member.exited = true;
      member.exitDescription = signal ? `signal ${signal}` : `code ${code}`;
      if (!this.stopping) this.onExit?.(member);
    });
    this.members.push(member);
    return member;
  }

  /** Both streams to the log file; error lines (pino level >= 50, or plain text on stderr) to the report too. */
  private pipeOutput(m: Member): void {
    const log = fs.createWriteStream(m.logFile, { flags: 'a' });
    const lines = (stream: NodeJS.ReadableStream | null, isStderr: boolean) => {
      let buf = '';
      stream?.on('data', (d: Buffer) => {
        log.write(d);
        buf += d.toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          const shown = errorLine(line, isStderr);
          if (shown === undefined) continue;
          m.lastErrors.push(shown);
          if (m.lastErrors.length > 5) m.lastErrors.shift();
          this.opts.report(`${m.spec.label} (pid ${m.pid}): ${shown}`);
        }
      });
    };
    lines(m.child.stdout, false);
    lines(m.child.stderr, true);
    m.child.on('close', () => log.end());
  }

  /** Resolves when every member is ready; rejects naming the first member that exited or is late. */
  async waitReady(timeoutMs: number, onReady?: (m: Member) => void): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const pending = new Set(this.members);
    while (pending.size > 0) {
      if (this.stopping) return; // stop() was called meanwhile: whoever called it reports why
      for (const m of [...pending]) {
        if (m.exited) {
          throw new DeployFailedError(`${m.spec.label} (pid ${m.pid}) exited with ${m.exitDescription} before it was ready${this.reason(m)}`);
        }
        m.run ??= readRunFile(this.opts.runDir, m.pid);
        if (m.run && (await isReady(m.run.url))) {
          pending.delete(m);
          onReady?.(m);
        }
      }
      if (pending.size === 0) break;
      if (Date.now() > deadline) {
        const late = [...pending].map((m) => `${m.spec.label} (pid ${m.pid}${m.run ? `, ${m.run.url}` : ''})`).join(', ');
        throw new DeployFailedError(`not ready after ${Math.round(timeoutMs / 1000)} s: ${late}; see ${path.relative(process.cwd(), this.opts.runDir) || '.'}/*.log`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Calls `fn` for each member that exits while not stopping. */
  watch(fn: (m: Member) => void): void {
    this.onExit = fn;
  }

  get alive(): Member[] {
    return this.members.filter((m) => !m.exited);
  }

  /** SIGTERM to every live member; SIGKILL to those still alive after `graceMs`. Resolves true when all stopped cleanly. */
  async stop(graceMs: number): Promise<boolean> {
    this.stopping = true;
    const live = this.alive;
    for (const m of live) signal(m, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (this.alive.length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const stuck = this.alive;
    for (const m of stuck) signal(m, 'SIGKILL');
    while (this.alive.length > 0) await new Promise((r) => setTimeout(r, 50));
    return stuck.length === 0 && live.every((m) => m.exitDescription === 'code 0');
  }

  /** " : <its last error>" for a message about a member. */
  reason(m: Member): string {
    const last = m.lastErrors.at(-1) ?? lastErrorInLog(m.logFile);
    return last ? `: ${last}` : `; see ${path.relative(process.cwd(), m.logFile)}`;
  }
}

function signal(m: Member, sig: NodeJS.Signals): void {
  try {
    process.kill(m.pid, sig);
  } catch {
    // already gone
  }
}

async function isReady(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/health/readiness`, { signal: AbortSignal.timeout(2000) });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

const EXPECTED_KAFKAJS = /rebalancing|rejoin is needed|not the correct coordinator|coordinator is (loading|not available)/i;

/** The message of an error line: a pino line of level error/fatal, or any non-JSON line on stderr. */
function errorLine(line: string, isStderr: boolean): string | undefined {
  if (line === '') return undefined;
  if (line.startsWith('{')) {
    try {
      const o = JSON.parse(line) as { level?: number; msg?: string; err?: { message?: string }; error?: unknown; kafkajs?: string };
      if ((o.level ?? 0) < 50) return undefined;
      const error = typeof o.error === 'string' ? o.error : undefined;
      // kafkajs logs a rebalance as a failed heartbeat at level error; it is the group working as intended.
      if (o.kafkajs && error && EXPECTED_KAFKAJS.test(error)) return undefined;
      return [o.msg, o.err?.message ?? error].filter(Boolean).join(': ');
    } catch {
      // not JSON after all
    }
  }
  return isStderr ? line.replace(/^weir: /, '').replace(/ \(set WEIR_DEBUG=1 to see the stack\)$/, '') : undefined;
}

function lastErrorInLog(file: string): string | undefined {
  try {
    const text = fs.readFileSync(file, 'utf8').slice(-16_384);
    const lines = text.split('\n').reverse();
    for (const l of lines) {
      const e = errorLine(l.trim(), true);
      if (e) return e;
    }
  } catch {
    // no log
  }
  return undefined;
}
