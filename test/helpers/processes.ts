import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A line the child printed as `{"event": ...}`, with where it starts in the child's output. */
export interface ChildEvent {
  event: string;
  at: number;
  [field: string]: unknown;
}

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

  /** The complete `{"event": ...}` lines printed at or after position `from` of the output, in order. */
  events(from = 0): ChildEvent[] {
    const out: ChildEvent[] = [];
    const text = this.output;
    let start = text.lastIndexOf('\n', from - 1) + 1;
    for (let end = text.indexOf('\n', start); end >= 0; start = end + 1, end = text.indexOf('\n', start)) {
      if (start < from || !text.startsWith('{"event":', start)) continue;
      try {
        out.push({ ...(JSON.parse(text.slice(start, end)) as { event: string }), at: start });
      } catch {
        // not a whole JSON line: some other output that happens to start the same way
      }
    }
    return out;
  }

  /** Waits for the first event at or after `from` that satisfies `match`, and returns it. */
  waitForEvent<E extends ChildEvent>(match: (e: ChildEvent) => e is E, what: string, timeoutMs?: number, from?: number): Promise<E>;
  waitForEvent(match: (e: ChildEvent) => boolean, what: string, timeoutMs?: number, from?: number): Promise<ChildEvent>;
  async waitForEvent(match: (e: ChildEvent) => boolean, what: string, timeoutMs = 60000, from = 0): Promise<ChildEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events(from).find(match);
      if (found) return found;
      if (this.exited) throw new Error(`process exited before printing ${what}:\n${this.output.slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}:\n${this.output.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.exited) this.proc.kill(signal);
  }
}
