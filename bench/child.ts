/**
 * The child side of a bench run (bench/variant.ts, bench/app-worker.ts, bench/sink-worker.ts): one run per
 * process, so its peak memory and CPU time are its own.
 * - the spec arrives as one JSON argument;
 * - memory peaks are sampled every 250 ms from the moment this module loads;
 * - `ready()` prints READY_LINE and `command()` waits for a line (`go`, `stop`) from the driver on stdin;
 * - the result goes to stdout as one RESULT_PREFIX line; logs go to stderr; the exit code says whether it worked.
 */
import readline from 'node:readline';
import { MB, READY_LINE, RESULT_PREFIX, type MemoryPeaks } from './common.js';

const peak = { rss: 0, heapTotal: 0, external: 0 };

export function sampleMemory(): void {
  const m = process.memoryUsage();
  peak.rss = Math.max(peak.rss, m.rss);
  peak.heapTotal = Math.max(peak.heapTotal, m.heapTotal);
  peak.external = Math.max(peak.external, m.external);
}
sampleMemory();
const timer = setInterval(sampleMemory, 250);

export function memoryPeaks(): MemoryPeaks {
  sampleMemory();
  return { peakRssMb: peak.rss / MB, peakHeapMb: peak.heapTotal / MB, peakExternalMb: peak.external / MB };
}

export function specArg<S>(): S {
  return JSON.parse(process.argv[2] ?? '') as S;
}

let lines: AsyncIterableIterator<string> | null = null;

/** Tells the driver this child is ready. */
export function ready(): void {
  process.stdout.write(`${READY_LINE}\n`);
}

/** Waits for the driver to send `word` on stdin (or to close it, which counts as `stop`). */
export async function command(word: 'go' | 'stop'): Promise<void> {
  lines ??= readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  for (;;) {
    const next = await lines.next();
    if (next.done) {
      if (word === 'stop') return;
      throw new Error(`stdin closed while waiting for '${word}'`);
    }
    if (next.value.trim() === word) return;
  }
}

/** Runs `main`, prints its result line and exits; `cleanup` runs either way before the exit. */
export function childMain<R>(label: string, main: () => Promise<R>, cleanup: () => void = () => undefined): void {
  main().then(
    (result) => {
      clearInterval(timer);
      cleanup();
      process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`);
      // process.exit also writes a --cpu-prof profile
      process.exit(0);
    },
    (err: unknown) => {
      clearInterval(timer);
      cleanup();
      process.stderr.write(`${label} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
