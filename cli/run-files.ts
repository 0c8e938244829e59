/**
 * Run files: how the processes of a deployed topology find each other on one machine.
 * Each worker (and, later, each sink process) started by `weir deploy` writes `<WEIR_RUN_DIR>/<applicationId>/<pid>.json`
 * holding its pid and the URL of its health server, and removes it when it exits. `weir deploy` reads it to poll
 * readiness; `weir status` and `weir stop` read all of them. A file whose pid is no longer alive is stale (a process
 * killed with SIGKILL) and is ignored.
 */
import fs from 'node:fs';
import path from 'node:path';

export type MemberRole = 'worker' | 'sink';

export interface RunFile {
  pid: number;
  /** Base URL of the process's health server: /health, /health/readiness, /metrics. */
  url: string;
  role: MemberRole;
  topology: string;
  applicationId: string;
  /** Index of the process among its deploy's members of the same role. */
  instance: number;
  startedAt: string;
  /** The log file the process writes to, when its deploy redirected it. */
  log?: string;
}

export function runDirOf(runRoot: string, applicationId: string): string {
  return path.resolve(runRoot, applicationId);
}

/** Write the run file of this process; the returned function removes it (also called on process exit). */
export function writeRunFile(dir: string, info: RunFile): () => void {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${info.pid}.json`);
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(info, null, 2)}\n`);
  fs.renameSync(tmp, file);
  let removed = false;
  const remove = () => {
    if (removed) return;
    removed = true;
    try {
      fs.unlinkSync(file);
    } catch {
      // already gone
    }
  };
  process.on('exit', remove);
  return remove;
}

export function readRunFile(dir: string, pid: number): RunFile | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, `${pid}.json`), 'utf8')) as RunFile;
  } catch {
    return undefined;
  }
}

/** The run files of live processes, by role then instance. */
export function liveRunFiles(dir: string): RunFile[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => /^\d+\.json$/.test(n));
  } catch {
    return [];
  }
  const out: RunFile[] = [];
  for (const n of names) {
    const f = readRunFile(dir, Number(n.slice(0, -'.json'.length)));
    if (f && isWeirProcess(f.pid)) out.push(f);
    else removeQuietly(path.join(dir, n)); // its process died without cleaning up (SIGKILL)
  }
  return out.sort((a, b) => a.role.localeCompare(b.role) || a.instance - b.instance || a.pid - b.pid);
}

/**
 * The deploy process of a foreground `weir deploy` writes `<dir>/deploy.json` ({pid}), so `weir stop` can ask it to
 * stop its members (rather than kill them under it, which it would report as unexpected deaths).
 */
export function writeDeployFile(dir: string): () => void {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'deploy.json');
  fs.writeFileSync(file, `${JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() })}\n`);
  const remove = () => removeQuietly(file);
  process.on('exit', remove);
  return remove;
}

/** The pid of the live foreground deploy of this run directory, if any. */
export function liveDeployPid(dir: string): number | undefined {
  try {
    const { pid } = JSON.parse(fs.readFileSync(path.join(dir, 'deploy.json'), 'utf8')) as { pid: number };
    return isWeirProcess(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

function removeQuietly(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch {
    // gone already
  }
}

/**
 * Alive, and (where /proc tells) running weir: a run file left by a killed process may name a pid the system has
 * since given to something else, which must never be signalled.
 */
export function isWeirProcess(pid: number): boolean {
  if (!isAlive(pid)) return false;
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('weir');
  } catch {
    return true; // no /proc (not Linux): trust the pid
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
