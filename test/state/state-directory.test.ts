import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StateDirectory } from '../../state/state-directory.js';
import { StateDirLockedError, WeirError } from '../../runtime/errors.js';

const holderScript = fileURLToPath(new URL('./fixtures/lock-holder.ts', import.meta.url));
// `--import tsx` resolves from the working directory: the repository root.
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Starts a child process that takes the lock; resolves once it has. */
function lockInChild(stateDir: string, applicationId: string, mode: 'hold' | 'die'): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', holderScript, stateDir, applicationId, mode], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('locked')) resolve(child);
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (mode === 'hold') reject(new Error(`lock holder exited with ${code}: ${stderr}`));
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

describe('StateDirectory', () => {
  let stateDir: string;
  const children: ChildProcess[] = [];

  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'weir-statedir-'));
  });

  afterEach(async () => {
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited(child);
    }
    await rm(stateDir, { recursive: true, force: true });
  });

  it('refuses the lock while another live process holds it, naming the directory and pid', async () => {
    const child = await lockInChild(stateDir, 'app', 'hold');
    children.push(child);
    const dir = new StateDirectory(stateDir, 'app');
    let err: unknown;
    try {
      dir.lock();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StateDirLockedError);
    const locked = err as StateDirLockedError;
    expect(locked.holderPid).toBe(child.pid);
    expect(locked.dir).toBe(join(stateDir, 'app'));
    expect(locked.message).toContain(join(stateDir, 'app'));
    expect(locked.message).toContain(`pid ${child.pid}`);
    expect(dir.locked).toBe(false);

    // Another application's directory under the same stateDir is free.
    const other = new StateDirectory(stateDir, 'other-app');
    other.lock();
    other.unlock();
  }, 20_000);

  it('takes over a lock left by a process that died', async () => {
    const child = await lockInChild(stateDir, 'app', 'die');
    children.push(child);
    await exited(child);
    const dir = new StateDirectory(stateDir, 'app');
    expect(readFileSync(dir.lockFile, 'utf8').trim()).toBe(String(child.pid));
    dir.lock();
    expect(dir.locked).toBe(true);
    expect(readFileSync(dir.lockFile, 'utf8').trim()).toBe(String(process.pid));
    dir.unlock();
    expect(existsSync(dir.lockFile)).toBe(false);
  }, 20_000);

  it('takes over a lock naming its own pid, and one left empty', () => {
    const dir = new StateDirectory(stateDir, 'app');
    dir.lock();
    dir.unlock();
    writeFileSync(dir.lockFile, `${process.pid}\n`);
    dir.lock();
    dir.unlock();
    writeFileSync(dir.lockFile, '');
    dir.lock();
    expect(readFileSync(dir.lockFile, 'utf8').trim()).toBe(String(process.pid));
    dir.unlock();
  });

  it('unlocks idempotently, and leaves alone a lock that is no longer its own', () => {
    const dir = new StateDirectory(stateDir, 'app');
    dir.lock();
    dir.lock(); // already held: no-op
    dir.unlock();
    dir.unlock();
    expect(existsSync(dir.lockFile)).toBe(false);

    dir.lock();
    writeFileSync(dir.lockFile, '999999999\n');
    dir.unlock();
    expect(readFileSync(dir.lockFile, 'utf8').trim()).toBe('999999999');
  });

  it('gives task and store directories on demand, and wipes a task', () => {
    const dir = new StateDirectory(stateDir, 'app');
    expect(dir.root).toBe(join(stateDir, 'app'));
    const task = dir.taskDir('0_1');
    expect(task).toBe(join(stateDir, 'app', '0_1'));
    expect(existsSync(task)).toBe(true);
    const store = dir.storeDir('0_1', 'positions');
    expect(store).toBe(join(stateDir, 'app', '0_1', 'rocksdb', 'positions'));
    expect(existsSync(store)).toBe(true);
    writeFileSync(join(store, 'data'), 'x');
    dir.wipeTask('0_1');
    expect(existsSync(task)).toBe(false);
    dir.wipeTask('0_1'); // nothing left: fine
    expect(() => dir.taskDir('../escape')).toThrow(WeirError);
    expect(() => dir.storeDir('0_1', '..')).toThrow(WeirError);
  });
});
