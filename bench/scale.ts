/**
 * Section `scale`: the trades drain with 1, 2, 3 … worker processes in one group on the same input (the apps
 * section's run, bench/apps.ts drainRun). On one machine the workers share its cores with the broker and each
 * other: the figures say what this machine does, not what more machines would.
 */
import os from 'node:os';
import { formatTable, int } from './common.js';
import type { BenchContext, SectionReport } from './context.js';
import { drainJson, drainRun, type DrainResult } from './apps.js';

export async function scaleSection(ctx: BenchContext): Promise<SectionReport> {
  const results: DrainResult[] = [];
  for (const n of ctx.opts.workers) results.push(await drainRun(ctx, 'trades', n, `scale-trades-w${n}`));
  const base = results.find((r) => r.workers === 1) ?? results[0]!;
  const head = ['workers', 'events', 'seconds', 'events/s', `vs ${base.workers} worker${base.workers > 1 ? 's' : ''}`, 'startup s', 'peak RSS MB (each)', 'CPU (all workers)'];
  const body = results.map((r) => [
    String(r.workers),
    int(r.events),
    r.seconds.toFixed(2),
    int(r.eventsPerSecond),
    (r.eventsPerSecond / base.eventsPerSecond).toFixed(2),
    r.startupSeconds.toFixed(2),
    r.workerPeakRssMb.map((x) => x.toFixed(0)).join(' '),
    `${Math.round((100 * r.cpuSeconds) / r.seconds)}%`,
  ]);
  const text = [
    `scale: trades, ${int(ctx.opts.events)} events, ${ctx.opts.partitions} partitions, N worker processes in one group started together`,
    `(${os.cpus().length} cores on this machine, shared with the broker). Time = first start() until the group has committed every input offset.`,
    '',
    formatTable(head, body),
  ].join('\n');
  return { section: 'scale', text, json: results.map(drainJson), aims: [] };
}
