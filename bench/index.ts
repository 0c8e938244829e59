/**
 * The bench: what weir does on this machine with the local broker, registry, Postgres and Redis.
 *
 *   npm run bench [-- --sections apps,latency,sinks,ceiling,scale --events 1000000 --latency-seconds 30 --json ...]
 *   npm run bench -- --events 20000 --latency-seconds 10 --warmup-seconds 3     (a small smoke run)
 *
 * Sections (all by default, in this order; each child process runs one thing, so its peak RSS and CPU are its own):
 *   apps     each application (routing, trades, payments; --apps) drains --events pre-produced scenario events,
 *            Avro through the registry, one worker process, exactly-once, RocksDB (bench/apps.ts)
 *   latency  p50/p99 event → committed-output latency per application at a steady --latency-rate (2,000/s) for
 *            --latency-seconds after --warmup-seconds (bench/latency.ts, where latency is defined)
 *   sinks    rows/s into Postgres and operations/s into Redis, each sink draining --events Avro output records
 *            (bench/sinks.ts)
 *   ceiling  the engine against bare kafkajs on the running-sum topology: variants exactly_once, at_least_once,
 *            bare (the original bench; --records, --keys, --variants, --concurrency, --repeat, --cpu-prof,
 *            --kafkajs-linear-grouping apply to it; bench/ceiling.ts)
 *   scale    the trades drain with --workers 1,2,3 worker processes in one group (bench/scale.ts)
 * Then the aims, each with its measured figure and pass / SHORT, and with --json one JSON object as the last line.
 *
 * 1. Starts (or reuses) the local broker (infra/kafka.ts; KAFKA_BROKERS for another) and, for every section but
 *    ceiling, the schema registry (infra/registry.ts; SCHEMA_REGISTRY_URL for another).
 * 2. Everything it makes is named `bench-<8 hex>-…` (topics, groups, subjects, the Postgres schema, Redis keys)
 *    and removed at the end unless --keep; then the services are released.
 *
 * `tsx bench/profile.ts <file>` summarizes a saved --cpu-prof profile again.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ensureKafka, KAFKA_HOME } from '../infra/kafka.js';
import { ccompatUrl, ensureRegistry } from '../infra/registry.js';
import { SchemaRegistryClient } from '../schemas/registry-client.js';
import { applications, type ApplicationName } from '../topologies/index.js';
import { VARIANTS, int, kafkaClient, log, removeOwned, round, type Variant } from './common.js';
import { SECTIONS, aimMet, type BenchContext, type BenchOptions, type Section, type SectionReport } from './context.js';
import { appsSection } from './apps.js';
import { latencySection } from './latency.js';
import { sinksSection } from './sinks.js';
import { ceilingSection } from './ceiling.js';
import { scaleSection } from './scale.js';

const APPS = Object.keys(applications) as ApplicationName[];

const USAGE = `usage: npm run bench -- [options]
  --sections LIST    comma-separated, of ${SECTIONS.join(', ')} (default: all, in that order)
  --events N         apps, scale, sinks: records to pre-produce and drain (default 1000000)
  --apps LIST        apps, latency: of ${APPS.join(', ')} (default: all)
  --latency-seconds S  latency: measured seconds per application (default 30)
  --warmup-seconds S   latency: seconds sent before measuring (default 5)
  --latency-rate N   latency: events per second (default 2000)
  --workers LIST     scale: worker process counts (default 1,2,3)
  --partitions N     partitions of every input and output topic (default 12)
  --seed N           scenario generator seed (default 1)
  --timeout S        give up on one run after S seconds (default 1800)
  --json             print one JSON object with the results as the last line
  --keep             keep the topics, groups, subjects, Postgres schema and Redis keys (default: removed)
 ceiling:
  --records N        running-sum input records (default: --events)
  --keys N           distinct keys (default 5000)
  --variants LIST    comma-separated, of ${VARIANTS.join(', ')} (default: all, in that order)
  --concurrency N    partitions consumed concurrently, weir and bare loop alike (default 4, weir's default)
  --repeat N         run the variants N times, round-robin, on the same input; report each variant's median run
                     (a shared machine is noisy; default 1)
  --cpu-prof         run the variants (and the apps section's workers) under node --cpu-prof and summarize the profiles
  --kafkajs-linear-grouping
                     experiment: replace kafkajs' quadratic per-partition grouping of sendBatch messages
                     with a linear one in the variant processes (bench/kafkajs-linear-grouping.ts)`;

function list<T extends string>(name: string, text: string, allowed: readonly T[]): T[] {
  const items = text.split(',').map((v) => v.trim()).filter(Boolean) as T[];
  for (const v of items) if (!allowed.includes(v)) throw new Error(`unknown ${name} '${v}'\n${USAGE}`);
  if (items.length === 0) throw new Error(`--${name} is empty\n${USAGE}`);
  return items;
}

function options(): BenchOptions {
  const { values } = parseArgs({
    options: {
      sections: { type: 'string', default: SECTIONS.join(',') },
      events: { type: 'string', default: '1000000' },
      apps: { type: 'string', default: APPS.join(',') },
      'latency-seconds': { type: 'string', default: '30' },
      'warmup-seconds': { type: 'string', default: '5' },
      'latency-rate': { type: 'string', default: '2000' },
      workers: { type: 'string', default: '1,2,3' },
      seed: { type: 'string', default: '1' },
      records: { type: 'string' },
      keys: { type: 'string', default: '5000' },
      partitions: { type: 'string', default: '12' },
      variants: { type: 'string', default: VARIANTS.join(',') },
      concurrency: { type: 'string', default: '4' },
      timeout: { type: 'string', default: '1800' },
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
  const events = int('events', values.events, 1);
  return {
    sections: list('sections', values.sections, SECTIONS),
    events,
    apps: list('apps', values.apps, APPS),
    latencySeconds: int('latency-seconds', values['latency-seconds'], 1),
    warmupSeconds: int('warmup-seconds', values['warmup-seconds'], 0),
    latencyRate: int('latency-rate', values['latency-rate'], 1),
    workers: values.workers.split(',').map((w) => int('workers', w.trim(), 1)),
    seed: int('seed', values.seed, 0),
    records: values.records === undefined ? events : int('records', values.records, 1),
    keys: int('keys', values.keys, 1),
    partitions: int('partitions', values.partitions, 1),
    variants: list<Variant>('variants', values.variants, VARIANTS),
    concurrency: int('concurrency', values.concurrency, 1),
    timeoutMs: int('timeout', values.timeout, 1) * 1000,
    repeat: int('repeat', values.repeat, 1),
    cpuProf: values['cpu-prof'],
    json: values.json,
    keep: values.keep,
    kafkajsLinearGrouping: values['kafkajs-linear-grouping'],
  };
}

/** The local broker's pid (to read its CPU time), or null when it is not known. */
function localBrokerPid(): number | null {
  if (process.env.KAFKA_BROKERS) return null;
  try {
    const pid = Number.parseInt(fs.readFileSync(path.join(KAFKA_HOME, 'broker.pid'), 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

const RUNNERS: Record<Section, (ctx: BenchContext) => Promise<SectionReport>> = {
  apps: appsSection,
  latency: latencySection,
  sinks: sinksSection,
  ceiling: ceilingSection,
  scale: scaleSection,
};

async function main(): Promise<void> {
  const opts = options();
  const t0 = performance.now();
  const needsRegistry = opts.sections.some((s) => s !== 'ceiling');
  const [broker, registryHandle] = await Promise.all([ensureKafka({ log }), needsRegistry ? ensureRegistry({ log }) : Promise.resolve(null)]);
  const run = `bench-${randomUUID().slice(0, 8)}`;
  const kafka = kafkaClient(broker.brokers, 'weir-bench');
  const admin = kafka.admin();
  const registry = registryHandle ? new SchemaRegistryClient({ url: ccompatUrl(registryHandle.url) }) : null;
  const ctx: BenchContext = {
    run,
    opts,
    brokers: broker.brokers,
    registryUrl: registryHandle?.url ?? null,
    registry,
    kafka,
    admin,
    brokerPid: localBrokerPid(),
    inputs: new Map(),
  };
  const reports: SectionReport[] = [];
  const failures: Array<{ section: Section; error: string }> = [];
  const load0 = os.loadavg()[0]!;
  try {
    await admin.connect();
    for (const section of opts.sections) {
      log(`--- ${section}`);
      try {
        reports.push(await RUNNERS[section](ctx));
      } catch (err) {
        // a failed section is reported, the others still run
        const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
        log(`${section} failed: ${error}`);
        failures.push({ section, error: err instanceof Error ? err.message : String(err) });
      }
    }
  } finally {
    if (!opts.keep) await removeOwned(admin, `${run}-`, registry);
    await admin.disconnect().catch(() => undefined);
    await Promise.all([broker.release(), registryHandle?.release()]);
  }

  const load1 = os.loadavg()[0]!;
  const cpus = os.cpus();
  console.log(
    `weir bench ${run}: node ${process.version}, ${cpus.length} × ${cpus[0]?.model.trim() ?? 'cpu'}; broker ${broker.brokers}` +
      `${broker.started ? ' (started by the bench)' : ''}; registry ${registryHandle?.url ?? '-'}; ${Math.round((performance.now() - t0) / 1000)} s in all`,
  );
  console.log(
    `load average (1 min) ${load0.toFixed(1)} at start, ${load1.toFixed(1)} at the end` +
      `${Math.max(load0, load1) > cpus.length ? ': the machine was busy with other work, figures are noisy' : ''}`,
  );
  for (const r of reports) console.log(`\n${r.text}`);
  for (const f of failures) console.log(`\n${f.section}: FAILED: ${f.error}`);
  const aims = reports.flatMap((r) => r.aims);
  if (aims.length > 0) {
    console.log('\naims (as measured on this machine):');
    const width = Math.max(...aims.map((a) => a.what.length));
    for (const a of aims) {
      const fmt = (x: number) => (Number.isFinite(x) ? int(x) : '-');
      console.log(`  ${aimMet(a) ? 'pass ' : 'SHORT'}  ${a.what.padEnd(width)}  ${fmt(a.measured).padStart(8)} ${a.unit}  (aim ${a.cmp === '>=' ? '≥' : '≤'} ${fmt(a.target)})`);
    }
  }
  if (opts.json) {
    console.log(
      JSON.stringify({
        run,
        node: process.version,
        cpus: cpus.length,
        loadAverage: { start: round(load0, 2), end: round(load1, 2) },
        options: {
          sections: opts.sections,
          events: opts.events,
          partitions: opts.partitions,
          apps: opts.apps,
          latencySeconds: opts.latencySeconds,
          warmupSeconds: opts.warmupSeconds,
          latencyRate: opts.latencyRate,
          workers: opts.workers,
          seed: opts.seed,
        },
        ...Object.fromEntries(reports.map((r) => [r.section, r.json])),
        aims: aims.map((a) => ({ what: a.what, measured: round(a.measured, 1), cmp: a.cmp, target: a.target, unit: a.unit, met: aimMet(a) })),
        failures,
      }),
    );
  }
  if (failures.length > 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
