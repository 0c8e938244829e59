/**
 * Section `ceiling`: the engine against the bare kafkajs client on the simplest stateful topology.
 * Pre-produces `--records` running-sum input records (test/fixtures/running-sum.ts) into one topic and runs each
 * variant in its own process (bench/variant.ts), each with its own group / application id and output topic:
 *   exactly_once   weir running-sum topology, exactly-once, RocksDB state
 *   at_least_once  the same, at-least-once
 *   bare           kafkajs consumer group, eachBatch → producer.sendBatch of the same records → commitOffsets;
 *                  no transactions, no state, no decoding: the best the client can do
 * Time = start() until the group's committed offsets reach the end of every input partition.
 * --repeat runs the variants round-robin and reports each one's median run; --cpu-prof profiles them.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../infra/kafka.js';
import { createTopics, endOffsets, formatTable, int, log, round, type Variant, type VariantResult } from './common.js';
import type { Aim, BenchContext, SectionReport } from './context.js';
import { produceInput } from './produce.js';
import { formatSummary, summarizeProfile, type ProfileSummary } from './profile.js';
import { BENCH_DIR, startChild } from './spawn.js';

/** node --cpu-prof writes one file per thread; the main thread's is the one with the most samples of the process's own work. */
export function mainThreadProfile(dir: string): string {
  const files = fs
    .readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(dir, f));
  if (files.length === 0) throw new Error(`no .cpuprofile written in ${dir}`);
  return files.map((f) => ({ f, busy: busyMs(f) })).sort((a, b) => b.busy - a.busy)[0]!.f;
}

const busyMs = (file: string) =>
  summarizeProfile(file, 0)
    .areas.filter((a) => a.area !== 'idle')
    .reduce((sum, a) => sum + a.ms, 0);

/** Records per second after the first committed offset appeared (excludes group join, restore, producer init). */
const steadyRate = (r: VariantResult) => r.records / Math.max(1e-3, r.seconds - r.startupSeconds);

type Row = VariantResult & { ratio: number | null; runs: number[] };

function table(rows: Row[], showRuns: boolean): string {
  const head = ['variant', 'records', 'seconds', 'records/s', 'vs bare', 'peak RSS MB', 'startup s', 'after-startup rec/s', 'node CPU', 'rec per CPU-s', 'broker CPU'];
  if (showRuns) head.push('all runs rec/s');
  const body = rows.map((r) => [
    r.variant,
    int(r.records),
    r.seconds.toFixed(2),
    int(r.recordsPerSecond),
    r.ratio === null ? '-' : r.ratio.toFixed(2),
    r.peakRssMb.toFixed(0),
    r.startupSeconds.toFixed(2),
    int(steadyRate(r)),
    `${Math.round((100 * r.cpuSeconds) / r.seconds)}%`,
    int(r.records / r.cpuSeconds),
    r.brokerCpuSeconds == null ? '-' : `${Math.round((100 * r.brokerCpuSeconds) / r.seconds)}%`,
    ...(showRuns ? [r.runs.map((x) => int(x)).join(' ')] : []),
  ]);
  return formatTable(head, body);
}

export async function ceilingSection(ctx: BenchContext): Promise<SectionReport> {
  const { opts, run, admin } = ctx;
  const input = `${run}-input`;
  // one slot per (repetition, variant), each with its own consumer group / application id and output topic
  const slots = Array.from({ length: opts.repeat }, (_, i) => opts.variants.map((variant) => ({ variant, rep: i + 1 }))).flat();
  const groupOf = (s: { variant: Variant; rep: number }) => `${run}-${s.variant.replace(/_/g, '-')}${opts.repeat > 1 ? `-${s.rep}` : ''}`;
  const outputOf = (s: { variant: Variant; rep: number }) => `${groupOf(s)}-output`;
  const profileDir = opts.cpuProf ? path.join(REPO_ROOT, '.local', 'bench', run) : null;
  const results: Array<VariantResult & { rep: number }> = [];
  const profiles: Record<string, { file: string; summary: ProfileSummary }> = {};

  await createTopics(admin, [input, ...slots.map(outputOf)], opts.partitions);
  log(`ceiling: producing ${int(opts.records)} records (${opts.keys} keys) to ${input} (${opts.partitions} partitions)...`);
  const p0 = performance.now();
  await produceInput(ctx.kafka, { topic: input, partitions: opts.partitions, records: opts.records, keys: opts.keys });
  const produceSeconds = (performance.now() - p0) / 1000;
  const produced = [...(await endOffsets(admin, input)).values()].reduce((a, b) => a + b, 0);
  if (produced !== opts.records) throw new Error(`produced ${produced} records, expected ${opts.records}`);
  log(`produced in ${produceSeconds.toFixed(1)} s (${int(opts.records / produceSeconds)} records/s)`);

  for (const slot of slots) {
    const { variant, rep } = slot;
    const stateDir = variant === 'bare' ? '' : fs.mkdtempSync(path.join(os.tmpdir(), 'weir-bench-'));
    log(`running ${variant}${opts.repeat > 1 ? ` (run ${rep} of ${opts.repeat})` : ''}...`);
    const spec = {
      variant,
      brokers: ctx.brokers,
      input,
      output: outputOf(slot),
      partitions: opts.partitions,
      records: opts.records,
      groupId: groupOf(slot),
      stateDir,
      concurrency: opts.concurrency,
      timeoutMs: opts.timeoutMs,
      brokerPid: ctx.brokerPid,
    };
    const r = await startChild<VariantResult>('variant.ts', spec, variant, {
      profileDir: rep === 1 && profileDir ? path.join(profileDir, variant) : null,
      preload: opts.kafkajsLinearGrouping ? [path.join(BENCH_DIR, 'kafkajs-linear-grouping.ts')] : [],
    }).result;
    log(`${variant}: ${r.seconds.toFixed(2)} s, ${int(r.recordsPerSecond)} records/s, peak RSS ${r.peakRssMb.toFixed(0)} MB (V8 heap ${r.peakHeapMb.toFixed(0)} MB, outside it ${r.peakExternalMb.toFixed(0)} MB)`);
    // Every variant forwards one output per input; under exactly-once the end offsets also count transaction markers,
    // so for all of them this is a lower bound.
    if (r.outputOffsets < r.records) {
      throw new Error(`${variant}: only ${r.outputOffsets} output records for ${r.records} inputs`);
    }
    results.push({ ...r, rep });
    if (profileDir && rep === 1) {
      const file = mainThreadProfile(path.join(profileDir, variant));
      profiles[variant] = { file: path.relative(REPO_ROOT, file), summary: summarizeProfile(file) };
    }
  }

  // per variant, its median run by records/s
  const medians = opts.variants.flatMap((v) => {
    const runs = results.filter((r) => r.variant === v).sort((a, b) => a.recordsPerSecond - b.recordsPerSecond);
    return runs.length === 0 ? [] : [{ ...runs[Math.floor((runs.length - 1) / 2)]!, runs: runs.map((r) => r.recordsPerSecond) }];
  });
  const bare = medians.find((r) => r.variant === 'bare');
  const rows: Row[] = medians.map((r) => ({ ...r, ratio: bare ? r.recordsPerSecond / bare.recordsPerSecond : null }));
  const lines = [
    `ceiling: running-sum topology, ${int(opts.records)} records, ${opts.keys} keys, ${opts.partitions} partitions, concurrency ${opts.concurrency}` +
      `${opts.kafkajsLinearGrouping ? ', kafkajs grouping patched (experiment)' : ''}`,
    ...(opts.repeat > 1 ? [`${opts.repeat} runs per variant, round-robin; the table shows each variant's median run`] : []),
    'each variant ran in its own process: peak RSS is that process (sampled every 250 ms); node CPU = its CPU time / drain time,',
    'rec per CPU-s = records / that CPU time (less sensitive to other load on the machine than records/s);',
    "broker CPU = the local broker JVM's CPU time over the same interval (100% = one core)",
    '',
    table(rows, opts.repeat > 1),
  ];
  const eos = rows.find((r) => r.variant === 'exactly_once');
  if (eos?.ratio != null) lines.push('', `exactly_once / bare = ${eos.ratio.toFixed(2)} (target >= 0.50: ${eos.ratio >= 0.5 ? 'met' : 'NOT met'})`);
  for (const [variant, p] of Object.entries(profiles)) lines.push('', formatSummary(`cpu profile ${variant} (${p.file})`, p.summary));
  const json = {
    records: opts.records,
    keys: opts.keys,
    partitions: opts.partitions,
    concurrency: opts.concurrency,
    repeat: opts.repeat,
    kafkajsLinearGrouping: opts.kafkajsLinearGrouping,
    results: rows.map((r) => ({
      variant: r.variant,
      records: r.records,
      seconds: round(r.seconds, 3),
      recordsPerSecond: Math.round(r.recordsPerSecond),
      ratioToBare: r.ratio === null ? null : round(r.ratio, 3),
      peakRssMb: round(r.peakRssMb, 1),
      peakHeapMb: round(r.peakHeapMb, 1),
      peakExternalMb: round(r.peakExternalMb, 1),
      startupSeconds: round(r.startupSeconds, 3),
      afterStartupRecordsPerSecond: Math.round(steadyRate(r)),
      nodeCpuSeconds: round(r.cpuSeconds, 2),
      recordsPerCpuSecond: Math.round(r.records / r.cpuSeconds),
      brokerCpuSeconds: r.brokerCpuSeconds == null ? null : round(r.brokerCpuSeconds, 2),
      ...(opts.repeat > 1 ? { allRunsRecordsPerSecond: r.runs.map((x) => Math.round(x)) } : {}),
    })),
  };
  const aims: Aim[] = eos?.ratio != null ? [{ what: 'running sum, exactly-once vs bare kafkajs', measured: 100 * eos.ratio, target: 50, unit: '% of bare', cmp: '>=' }] : [];
  return { section: 'ceiling', text: lines.join('\n'), json, aims };
}
