import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A child node process running a TypeScript entry point, with its output kept for assertions. */
export class ChildWorker {
  readonly proc: ChildProcess;
  output = '';

  constructor(entry: string, env: Record<string, string>) {
    this.proc = spawn(process.execPath, ['--import', 'tsx', path.join(root, entry)], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc.stdout!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.proc.stderr!.on('data', (d: Buffer) => (this.output += d.toString()));
  }

  get exited(): boolean {
    return this.proc.exitCode !== null || this.proc.signalCode !== null;
  }

  /** Resolves with the exit code (or signal name). */
  waitExit(timeoutMs = 30000): Promise<number | string> {
    if (this.exited) return Promise.resolve(this.proc.exitCode ?? this.proc.signalCode!);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`process ${this.proc.pid} did not exit within ${timeoutMs} ms\n${this.output.slice(-2000)}`)), timeoutMs);
      this.proc.once('exit', (code, signal) => {
        clearTimeout(t);
        resolve(code ?? signal!);
      });
    });
  }

  async waitForOutput(pattern: RegExp, timeoutMs = 60000, from = 0): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.output.slice(from))) {
      if (this.exited) throw new Error(`process exited before printing ${pattern}:\n${this.output.slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}:\n${this.output.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.exited) this.proc.kill(signal);
  }
}
