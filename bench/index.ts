/**
 * Throughput bench: how fast weir drains a pre-produced topic, against the bare kafkajs ceiling.
 *
 *   npm run bench [-- --records 1000000 --keys 5000 --partitions 12 --variants exactly_once,at_least_once,bare
 *                     --concurrency 4 --repeat 1 --cpu-prof --json --keep --kafkajs-linear-grouping]
 *
 * 1. Starts (or reuses) the local broker (infra/kafka.ts; KAFKA_BROKERS to use another one).
 * 2. Pre-produces N running-sum input records (test/fixtures/running-sum.ts) into a fresh topic.
 * 3. Runs each variant in its own child process (bench/variant.ts), so peak RSS and CPU profiles are
 *    per variant; each has its own consumer group / application id and output topic:
 *      exactly_once   weir running-sum topology, Worker guarantee exactly_once, RocksDB state
 *      at_least_once  the same, at_least_once
 *      bare           kafkajs consumer group, eachBatch → producer.sendBatch of the same records → commitOffsets;
 *                     no transactions, no state, no decoding: the best the client can do
 *    Time = start() until the group's committed offsets reach the end of every input partition.
 * 4. Prints a table (and with --json one JSON object as the last line), deletes the topics it created
 *    (unless --keep) and releases the broker.
 *
 * --cpu-prof runs the children under `node --cpu-prof` (profiles under .local/bench/<run>/) and prints where
 * their time goes; `tsx bench/profile.ts <file>` summarizes a saved profile again.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { Admin } from 'kafkajs';
import { ensureKafka, KAFKA_HOME, REPO_ROOT } from '../infra/kafka.js';
import { RESULT_PREFIX, VARIANTS, endOffsets, kafkaClient, sleep, type Variant, type VariantResult, type VariantSpec } from './common.js';
import { produceInput } from './produce.js';
import { formatSummary, summarizeProfile, type ProfileSummary } from './profile.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

const USAGE = `usage: npm run bench -- [options]
  --records N        input records to pre-produce and drain (default 1000000)
  --keys N           distinct keys (default 5000)
  --partitions N     input/output partitions (default 12)
  --variants LIST    comma-separated, of ${VARIANTS.join(', ')} (default: all, in that order)
  --concurrency N    partitions consumed concurrently, weir and bare loop alike (default 4, weir's default)
  --timeout S        give up on a variant after S seconds (default 600)
  --repeat N         run the variants N times, round-robin, on the same input; report each variant's median run
                     (a shared machine is noisy; default 1)
  --cpu-prof         run the variants under node --cpu-prof and summarize the profiles
  --json             print one JSON object with the results as the last line
  --keep             keep the topics and consumer groups (default: deleted at the end)
  --kafkajs-linear-grouping
                     experiment: replace kafkajs' quadratic per-partition grouping of sendBatch messages
                     with a linear one in the variant processes (bench/kafkajs-linear-grouping.ts)`;

interface Options {
  records: number;
  keys: number;
  partitions: number;
  variants: Variant[];
  concurrency: number;
  timeoutMs: number;
  repeat: number;
  cpuProf: boolean;
  json: boolean;
  keep: boolean;
  kafkajsLinearGrouping: boolean;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      records: { type: 'string', default: '1000000' },
      keys: { type: 'string', default: '5000' },
      partitions: { type: 'string', default: '12' },
      variants: { type: 'string', default: VARIANTS.join(',') },
      concurrency: { type: 'string', default: '4' },
      timeout: { type: 'string', default: '600' },
      repeat: { type: 'string', default: '1' },
      'cpu-prof': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      'kafkajs-linear-grouping': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, v: string, min: number) => {
    const n = Number(v.replace(/_/g, ''));
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got '${v}'\n${USAGE}`);
    return n;
  };
  const variants = values.variants.split(',').map((v) => v.trim()).filter(Boolean) as Variant[];
  for (const v of variants) if (!VARIANTS.includes(v)) throw new Error(`unknown variant '${v}'\n${USAGE}`);
  return {
    records: int('records', values.records, 1),
    keys: int('keys', values.keys, 1),
    partitions: int('partitions', values.partitions, 1),
    variants,
    concurrency: int('concurrency', values.concurrency, 1),
    timeoutMs: int('timeout', values.timeout, 1) * 1000,
    repeat: int('repeat', values.repeat, 1),
    cpuProf: values['cpu-prof'],
    json: values.json,
    keep: values.keep,
    kafkajsLinearGrouping: values['kafkajs-linear-grouping'],
  };
}

const log = (msg: string) => process.stderr.write(`${msg}\n`);

/** Runs bench/variant.ts in a child node process (tsx loader) and returns its result line. */
function runVariant(spec: VariantSpec, profileDir: string | null, preload: string[]): Promise<VariantResult> {
  const tsx = import.meta.resolve('tsx');
  const args = [
    // one profile per thread (the tsx loader runs its hooks in a thread of its own): see mainThreadProfile
    ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${path.join(profileDir, spec.variant)}`] : []),
    '--import',
    tsx,
    ...preload.flatMap((f) => ['--import', pathToFileURL(f).href]),
    path.join(HERE, 'variant.ts'),
    JSON.stringify(spec),
  ];
  if (profileDir) fs.mkdirSync(path.join(profileDir, spec.variant), { recursive: true });
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: {
        ...process.env,
        KAFKAJS_NO_PARTITIONER_WARNING: '1',
        ...(profileDir ? { WEIR_BENCH_PROFILE_DIR: path.join(profileDir, spec.variant) } : {}),
      },
    });
    let out = '';
    let resultLine: string | null = null;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out += d;
      // anything but the result line goes to stderr, so stdout stays the table (and JSON)
      let nl: number;
      while ((nl = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (line.startsWith(RESULT_PREFIX)) {
          resultLine = line.slice(RESULT_PREFIX.length);
        } else if (line.trim()) process.stderr.write(`[${spec.variant}] ${line}\n`);
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0 && resultLine) resolve(JSON.parse(resultLine) as VariantResult);
      else reject(new Error(`variant ${spec.variant} exited with ${code}${resultLine ? '' : ' without a result'}`));
    });
  });
}

/** Creates the topics and waits until every partition has a leader; a broker that just started may need retries. */
async function createTopics(admin: Admin, topics: string[], partitions: number): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await admin.createTopics({ waitForLeaders: true, topics: topics.map((topic) => ({ topic, numPartitions: partitions })) });
    } catch (err) {
      if ((err as { type?: string }).type !== 'TOPIC_ALREADY_EXISTS' && attempt >= 10) throw err;
    }
    try {
      const meta = await admin.fetchTopicMetadata({ topics });
      if (meta.topics.length === topics.length && meta.topics.every((t) => t.partitions.length === partitions && t.partitions.every((p) => p.leader >= 0))) {
        return;
      }
    } catch (err) {
      if (attempt >= 10) throw err;
    }
    if (attempt >= 10) throw new Error(`topics ${topics.join(', ')} have no leaders after ${attempt} attempts`);
    await sleep(500 * attempt);
  }
}

/** node --cpu-prof writes one file per thread; the main thread's is the one with the most samples of the process's own work. */
function mainThreadProfile(dir: string): string {
  const files = fs
    .readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(dir, f));
  if (files.length === 0) throw new Error(`no .cpuprofile written in ${dir}`);
  return files.map((f) => ({ f, busy: busyMs(f) })).sort((a, b) => b.busy - a.busy)[0]!.f;
}

const busyMs = (file: string) =>
  summarizeProfile(file, 0)
    .areas.filter((a) => a.area !== 'idle')
    .reduce((sum, a) => sum + a.ms, 0);

/** The local broker's pid (to read its CPU time), or null when it is not known. */
function localBrokerPid(): number | null {
  try {
    const pid = Number.parseInt(fs.readFileSync(path.join(KAFKA_HOME, 'broker.pid'), 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function table(rows: Array<VariantResult & { ratio: number | null; runs: number[] }>, showRuns: boolean): string {
  const head = ['variant', 'records', 'seconds', 'records/s', 'vs bare', 'peak RSS MB', 'startup s', 'after-startup rec/s', 'node CPU', 'rec per CPU-s', 'broker CPU'];
  if (showRuns) head.push('all runs rec/s');
  const body = rows.map((r) => [
    r.variant,
    r.records.toLocaleString('en-US'),
    r.seconds.toFixed(2),
    Math.round(r.recordsPerSecond).toLocaleString('en-US'),
    r.ratio === null ? '-' : r.ratio.toFixed(2),
    r.peakRssMb.toFixed(0),
    r.startupSeconds.toFixed(2),
    Math.round(steadyRate(r)).toLocaleString('en-US'),
    `${Math.round((100 * r.cpuSeconds) / r.seconds)}%`,
    Math.round(r.records / r.cpuSeconds).toLocaleString('en-US'),
    r.brokerCpuSeconds == null ? '-' : `${Math.round((100 * r.brokerCpuSeconds) / r.seconds)}%`,
    ...(showRuns ? [r.runs.map((x) => Math.round(x).toLocaleString('en-US')).join(' ')] : []),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [fmt(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(fmt)].join('\n');
}

async function main(): Promise<void> {
  const opts = options();
  const broker = await ensureKafka({ log });
  const run = `bench-${randomUUID().slice(0, 8)}`;
  const input = `${run}-input`;
  // one slot per (repetition, variant), each with its own consumer group / application id and output topic
  const slots = Array.from({ length: opts.repeat }, (_, i) => opts.variants.map((variant) => ({ variant, rep: i + 1 }))).flat();
  const groupOf = (s: { variant: Variant; rep: number }) => `${run}-${s.variant.replace(/_/g, '-')}${opts.repeat > 1 ? `-${s.rep}` : ''}`;
  const outputOf = (s: { variant: Variant; rep: number }) => `${groupOf(s)}-output`;
  const kafka = kafkaClient(broker.brokers, 'weir-bench');
  const admin = kafka.admin();
  await admin.connect();
  const profileDir = opts.cpuProf ? path.join(REPO_ROOT, '.local', 'bench', run) : null;
  const results: Array<VariantResult & { rep: number }> = [];
  const load0 = os.loadavg()[0]!;
  const profiles: Record<string, { file: string; summary: ProfileSummary }> = {};
  try {
    await createTopics(admin, [input, ...slots.map(outputOf)], opts.partitions);

    log(`producing ${opts.records.toLocaleString('en-US')} records (${opts.keys} keys) to ${input} (${opts.partitions} partitions)...`);
    const p0 = performance.now();
    await produceInput(kafka, { topic: input, partitions: opts.partitions, records: opts.records, keys: opts.keys });
    const produceSeconds = (performance.now() - p0) / 1000;
    const produced = [...(await endOffsets(admin, input)).values()].reduce((a, b) => a + b, 0);
    if (produced !== opts.records) throw new Error(`produced ${produced} records, expected ${opts.records}`);
    log(`produced in ${produceSeconds.toFixed(1)} s (${Math.round(opts.records / produceSeconds).toLocaleString('en-US')} records/s)`);

    for (const slot of slots) {
      const { variant, rep } = slot;
      const stateDir = variant === 'bare' ? '' : fs.mkdtempSync(path.join(os.tmpdir(), 'weir-bench-'));
      log(`running ${variant}${opts.repeat > 1 ? ` (run ${rep} of ${opts.repeat})` : ''}...`);
      const r = await runVariant(
        {
          variant,
          brokers: broker.brokers,
          input,
          output: outputOf(slot),
          partitions: opts.partitions,
          records: opts.records,
          groupId: groupOf(slot),
          stateDir,
          concurrency: opts.concurrency,
          timeoutMs: opts.timeoutMs,
          brokerPid: process.env.KAFKA_BROKERS ? null : localBrokerPid(),
        },
        rep === 1 ? profileDir : null,
        opts.kafkajsLinearGrouping ? [path.join(HERE, 'kafkajs-linear-grouping.ts')] : [],
      );
      log(`${variant}: ${r.seconds.toFixed(2)} s, ${Math.round(r.recordsPerSecond).toLocaleString('en-US')} records/s, peak RSS ${r.peakRssMb.toFixed(0)} MB (V8 heap ${r.peakHeapMb.toFixed(0)} MB, outside it ${r.peakExternalMb.toFixed(0)} MB)`);
      if (variant !== 'exactly_once' && r.outputOffsets < r.records) {
        throw new Error(`${variant}: only ${r.outputOffsets} output records for ${r.records} inputs`);
      }
      results.push({ ...r, rep });
      if (profileDir && rep === 1) {
        const file = mainThreadProfile(path.join(profileDir, variant));
        profiles[variant] = { file: path.relative(REPO_ROOT, file), summary: summarizeProfile(file) };
      }
    }
  } finally {
    if (!opts.keep) {
      const topics = [input, ...slots.map(outputOf)];
      for (const slot of slots) if (slot.variant !== 'bare') topics.push(`${groupOf(slot)}-sums-changelog`, `${groupOf(slot)}-dead-letters`);
      const existing = new Set(await admin.listTopics().catch(() => [] as string[]));
      await admin.deleteTopics({ topics: topics.filter((t) => existing.has(t)) }).catch((e: Error) => log(`could not delete topics: ${e.message}`));
      await admin.deleteGroups(slots.map(groupOf)).catch(() => undefined);
    }
    await admin.disconnect().catch(() => undefined);
    await broker.release();
  }

  const load1 = os.loadavg()[0]!;
  // per variant, its median run by records/s
  const medians = opts.variants.flatMap((v) => {
    const runs = results.filter((r) => r.variant === v).sort((a, b) => a.recordsPerSecond - b.recordsPerSecond);
    return runs.length === 0 ? [] : [{ ...runs[Math.floor((runs.length - 1) / 2)]!, runs: runs.map((r) => r.recordsPerSecond) }];
  });
  const bare = medians.find((r) => r.variant === 'bare');
  const rows = medians.map((r) => ({ ...r, ratio: bare ? r.recordsPerSecond / bare.recordsPerSecond : null }));
  const cpus = os.cpus();
  console.log(
    `weir bench: ${opts.records.toLocaleString('en-US')} records, ${opts.keys} keys, ${opts.partitions} partitions, ` +
      `concurrency ${opts.concurrency}${opts.kafkajsLinearGrouping ? ', kafkajs grouping patched (experiment)' : ''}; node ${process.version}, ${cpus.length} × ${cpus[0]?.model.trim() ?? 'cpu'}; broker ${broker.brokers}` +
      `${broker.started ? ' (started by the bench)' : ''}`,
  );
  console.log(
    `load average (1 min) ${load0.toFixed(1)} at start, ${load1.toFixed(1)} at the end` +
      `${Math.max(load0, load1) > cpus.length ? ': the machine was busy with other work, figures are noisy' : ''}`,
  );
  if (opts.repeat > 1) console.log(`${opts.repeat} runs per variant, round-robin; the table shows each variant's median run`);
  console.log('each variant ran in its own process: peak RSS is that process (sampled every 250 ms); node CPU = its CPU time / drain time,');
  console.log('rec per CPU-s = records / that CPU time (less sensitive to other load on the machine than records/s);');
  console.log('broker CPU = the local broker JVM\'s CPU time over the same interval (100% = one core)');
  console.log('');
  console.log(table(rows, opts.repeat > 1));
  const eos = rows.find((r) => r.variant === 'exactly_once');
  if (eos?.ratio != null) {
    console.log('');
    console.log(`exactly_once / bare = ${eos.ratio.toFixed(2)} (target >= 0.50: ${eos.ratio >= 0.5 ? 'met' : 'NOT met'})`);
  }
  for (const [variant, p] of Object.entries(profiles)) {
    console.log('');
    console.log(formatSummary(`cpu profile ${variant} (${p.file})`, p.summary));
  }
  if (opts.json) {
    console.log(
      JSON.stringify({
        records: opts.records,
        keys: opts.keys,
        partitions: opts.partitions,
        concurrency: opts.concurrency,
        repeat: opts.repeat,
        loadAverage: { start: round(load0, 2), end: round(load1, 2) },
        kafkajsLinearGrouping: opts.kafkajsLinearGrouping,
        node: process.version,
        cpus: cpus.length,
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
      }),
    );
  }
}

/** Records per second after the first committed offset appeared (excludes group join, restore, producer init). */
const steadyRate = (r: VariantResult) => r.records / Math.max(1e-3, r.seconds - r.startupSeconds);

const round = (x: number, digits: number) => Number(x.toFixed(digits));

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
