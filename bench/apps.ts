/**
 * Section `apps`: how fast each application drains N pre-produced events (bench/inputs.ts), one worker process
 * (bench/app-worker.ts): exactly-once, Avro through the registry, RocksDB stores.
 * `drainRun` is also the scale section's run, with several worker processes in one group.
 * Drain time = the first worker's start() until the group's committed offsets reach the end of every input
 * partition; events/s = input records (duplicates included) / drain time.
 */
import { applications, type ApplicationName } from '../topologies/index.js';
import { createTopics, formatTable, int, log, removeOwned, round } from './common.js';
import { topicNames, type Aim, type BenchContext, type SectionReport } from './context.js';
import { appInput, DUPLICATES } from './inputs.js';
import { startChild, type ChildHandle } from './spawn.js';
import path from 'node:path';
import { REPO_ROOT } from '../infra/kafka.js';
import { mainThreadProfile } from './ceiling.js';
import { formatSummary, summarizeProfile } from './profile.js';
import type { AppWorkerResult, AppWorkerSpec } from './app-worker.js';

export interface DrainResult {
  app: ApplicationName;
  workers: number;
  events: number;
  seconds: number;
  eventsPerSecond: number;
  /** first start() → first committed offset (group join, producer init, first transaction) */
  startupSeconds: number;
  /** the largest peak RSS of the worker processes, and each one's */
  peakRssMb: number;
  workerPeakRssMb: number[];
  /** CPU time of all worker processes together, and as a share of one core over the drain time */
  cpuSeconds: number;
  outputOffsets: number;
  deadLetterOffsets: number;
}

/** One drain of the application's shared input by `workers` processes in a fresh group (`<run>-<label>`). */
export async function drainRun(ctx: BenchContext, name: ApplicationName, workers: number, label: string): Promise<DrainResult> {
  const app = applications[name];
  const input = await appInput(ctx, app);
  const prefix = `${ctx.run}-${label}`;
  const outputs = topicNames(prefix, app.outputs);
  await createTopics(ctx.admin, Object.values(outputs), ctx.opts.partitions);
  const spec: Omit<AppWorkerSpec, 'label'> = {
    app: name,
    mode: 'drain',
    brokers: ctx.brokers,
    registryUrl: ctx.registryUrl!,
    applicationId: prefix,
    topics: { ...input.names, ...outputs },
    partitions: ctx.opts.partitions,
    timeoutMs: ctx.opts.timeoutMs,
  };
  const children: Array<ChildHandle<AppWorkerResult>> = [];
  // --cpu-prof: the single worker of an apps run is profiled, and where its time goes is printed
  const profileDir = ctx.opts.cpuProf && workers === 1 ? path.join(REPO_ROOT, '.local', 'bench', ctx.run, label) : null;
  try {
    for (let i = 1; i <= workers; i++) {
      const l = workers > 1 ? `${label}-${i}` : label;
      children.push(startChild<AppWorkerResult>('app-worker.ts', { ...spec, label: l }, l, { profileDir }));
    }
    await Promise.all(children.map((c) => c.ready));
    log(`${label}: draining ${int(input.records)} ${name} events with ${workers} worker process${workers > 1 ? 'es' : ''}...`);
    for (const c of children) c.send('go');
    const results = await Promise.all(children.map((c) => c.result));
    const started = Math.min(...results.map((r) => r.startedAt));
    const drained = Math.max(...results.map((r) => r.drainedAt ?? Number.NaN));
    const firstCommit = Math.min(...results.map((r) => r.firstCommitAt ?? drained));
    const seconds = (drained - started) / 1000;
    const r: DrainResult = {
      app: name,
      workers,
      events: input.records,
      seconds,
      eventsPerSecond: input.records / seconds,
      startupSeconds: (firstCommit - started) / 1000,
      peakRssMb: Math.max(...results.map((x) => x.peakRssMb)),
      workerPeakRssMb: results.map((x) => x.peakRssMb),
      cpuSeconds: results.reduce((a, x) => a + x.cpuSeconds, 0),
      // each worker reads them after it stopped: the largest is the group's last word
      outputOffsets: Math.max(...results.map((x) => x.outputOffsets)),
      deadLetterOffsets: Math.max(...results.map((x) => x.deadLetterOffsets)),
    };
    log(`${label}: ${seconds.toFixed(2)} s, ${int(r.eventsPerSecond)} events/s, peak RSS ${r.peakRssMb.toFixed(0)} MB`);
    if (profileDir) {
      const file = mainThreadProfile(profileDir);
      log(formatSummary(`${label} worker (${path.relative(REPO_ROOT, file)})`, summarizeProfile(file)));
    }
    return r;
  } catch (err) {
    for (const c of children) c.kill();
    throw err;
  } finally {
    if (!ctx.opts.keep) await removeOwned(ctx.admin, `${prefix}-`, ctx.registry);
  }
}

export const drainJson = (r: DrainResult) => ({
  app: r.app,
  workers: r.workers,
  events: r.events,
  seconds: round(r.seconds, 3),
  eventsPerSecond: Math.round(r.eventsPerSecond),
  startupSeconds: round(r.startupSeconds, 3),
  peakRssMb: round(r.peakRssMb, 1),
  workerPeakRssMb: r.workerPeakRssMb.map((x) => round(x, 1)),
  cpuSeconds: round(r.cpuSeconds, 2),
  outputOffsets: r.outputOffsets,
  deadLetterOffsets: r.deadLetterOffsets,
});

export const DRAIN_AIM = 20_000;
export const RSS_AIM_MB = 400;

export async function appsSection(ctx: BenchContext): Promise<SectionReport> {
  const results: DrainResult[] = [];
  for (const name of ctx.opts.apps) results.push(await drainRun(ctx, name, 1, name));
  const head = ['application', 'events', 'seconds', 'events/s', 'startup s', 'peak RSS MB', 'worker CPU', 'output offsets', 'dead letters'];
  const body = results.map((r) => [
    r.app,
    int(r.events),
    r.seconds.toFixed(2),
    int(r.eventsPerSecond),
    r.startupSeconds.toFixed(2),
    r.peakRssMb.toFixed(0),
    `${Math.round((100 * r.cpuSeconds) / r.seconds)}%`,
    int(r.outputOffsets),
    int(r.deadLetterOffsets),
  ]);
  const aims: Aim[] = results.flatMap((r) => [
    { what: `${r.app} drain`, measured: r.eventsPerSecond, target: DRAIN_AIM, unit: 'events/s', cmp: '>=' as const },
    ...(r.app === 'trades' ? [{ what: 'trades worker peak RSS (drain)', measured: r.peakRssMb, target: RSS_AIM_MB, unit: 'MB', cmp: '<=' as const }] : []),
  ]);
  const text = [
    `apps: drain ${int(ctx.opts.events)} pre-produced events per application (${Math.round(100 * DUPLICATES)}% re-sent duplicates), one worker process,`,
    `exactly-once, Avro through the registry, RocksDB; ${ctx.opts.partitions} partitions per input. Time = start() until the group's committed`,
    'offsets reach the end of every input partition. Offsets of outputs and dead letters include transaction markers.',
    '',
    formatTable(head, body),
  ].join('\n');
  return { section: 'apps', text, json: results.map(drainJson), aims };
}
