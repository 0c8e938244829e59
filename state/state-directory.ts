import { closeSync, mkdirSync, openSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { StateDirLockedError, WeirError } from '../runtime/errors.js';

const LOCK_FILE = '.lock';

/**
 * The on-disk home of one application's state in this worker: `<stateDir>/<applicationId>`.
 * Responsible for:
 * - an exclusive process lock on it, so two live workers never share task directories;
 * - taking over a lock left behind by a worker that died;
 * - the paths of task and store directories (created on demand), and wiping a task's directory.
 *
 * The lock is a file created with O_EXCL holding the holder's pid. A lock naming our own pid is ours
 * to take: a container restarted under the same pid (often 1) would otherwise lock itself out.
 */
export class StateDirectory {
  readonly root: string;
  private held = false;

  constructor(stateDir: string, readonly applicationId: string) {
    this.root = join(stateDir, safeSegment(applicationId, 'application id'));
  }

  get lockFile(): string {
    return join(this.root, LOCK_FILE);
  }

  get locked(): boolean {
    return this.held;
  }

  /** Takes the lock, or throws StateDirLockedError when another live process holds it. */
  lock(): void {
    if (this.held) return;
    mkdirSync(this.root, { recursive: true });
    // Retry after taking over a stale lock, or when the lock vanished while we looked.
    for (let attempt = 0; attempt < 3; attempt++) {
      if (this.tryCreate()) {
        this.held = true;
        return;
      }
      const holder = this.readHolder();
      if (holder === 'gone') continue;
      if (holder !== null && holder !== process.pid && isAlive(holder)) {
        throw new StateDirLockedError(this.root, holder);
      }
      // Stale: its holder is dead, is us, or died before writing its pid. Take it over.
      try {
        unlinkSync(this.lockFile);
      } catch (err) {
        if (code(err) !== 'ENOENT') throw err;
      }
    }
    throw new WeirError(`could not take the lock ${this.lockFile}: it keeps changing hands`, { retriable: true });
  }

  /** Releases the lock if this instance holds it; safe to call any number of times (and from an exit handler). */
  unlock(): void {
    if (!this.held) return;
    this.held = false;
    try {
      // Leave a lock that is no longer ours (taken over meanwhile) alone.
      if (this.readHolder() === process.pid) unlinkSync(this.lockFile);
    } catch (err) {
      if (code(err) !== 'ENOENT') throw err;
    }
  }

  /** `<root>/<taskId>`, created if missing. */
  taskDir(taskId: string): string {
    const dir = join(this.root, safeSegment(taskId, 'task id'));
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** `<root>/<taskId>/rocksdb/<storeName>`, created if missing. */
  storeDir(taskId: string, storeName: string): string {
    const dir = join(this.taskDir(taskId), 'rocksdb', safeSegment(storeName, 'store name'));
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** Removes a task's directory with all its stores; they must be closed first. */
  wipeTask(taskId: string): void {
    rmSync(join(this.root, safeSegment(taskId, 'task id')), { recursive: true, force: true });
  }

  private tryCreate(): boolean {
    let fd: number;
    try {
      fd = openSync(this.lockFile, 'wx');
    } catch (err) {
      if (code(err) === 'EEXIST') return false;
      throw err;
    }
    try {
      writeSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
    return true;
  }

  /** The pid in the lock file; null when it holds none (yet), 'gone' when the file is not there. */
  private readHolder(): number | 'gone' | null {
    // A holder creates the file and then writes its pid: give a fresh lock a moment to be filled.
    for (let i = 0; i < 10; i++) {
      let text: string;
      try {
        text = readFileSync(this.lockFile, 'utf8').trim();
      } catch (err) {
        if (code(err) === 'ENOENT') return 'gone';
        throw err;
      }
      if (/^\d+$/.test(text)) return Number(text);
      sleepSync(10);
    }
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to another user; still alive.
    return code(err) === 'EPERM';
  }
}

function safeSegment(value: string, what: string): string {
  if (value === '' || value === '.' || value === '..' || /[/\\\0]/.test(value)) {
    throw new WeirError(`${what} '${value}' cannot name a directory`);
  }
  return value;
}

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
