/**
 * The main job (`npm start`, later `weir demo`): the three applications end to end on real services, checked.
 *  1. Kafka and the schema registry: the configured ones, else the project's local ones (started if needed);
 *  2. reset: the demo's topics, consumer groups, sink tables, Redis keys and local state from an earlier run;
 *  3. the topics of the catalog (WEIR_PARTITIONS partitions, `positions` compacted) and the Avro schemas;
 *  4. one worker per application in this process, a health server with the metrics, the Postgres and Redis sinks;
 *  5. a seeded mixed stream (duplicates, late and out-of-order events, malformed records), with live progress;
 *  6. wait until every input is processed and every sink has stored the end offsets; then a closing payment per
 *     partition moves stream time past every settlement deadline, and the wait is repeated;
 *  7. the summary, checked from what landed (checks.ts), and where to look next.
 * Exit code: 0 every check passed, 1 a check failed or the run failed, 130 / 143 interrupted by SIGINT / SIGTERM
 * (workers commit and leave, sinks flush, services released). With `--serve` it keeps running after the summary
 * (metrics, sinks) until Ctrl-C, then exits with the summary's code.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pino, { type Logger } from 'pino';
import pg from 'pg';
import { Redis } from 'ioredis';
import type { Admin } from 'kafkajs';
import { avroSerdesFor, type ApplicationName } from '../../topologies/index.js';
import { registerSchemas } from '../../schemas/registration.js';
import { subjectOf, topicContracts } from '../../schemas/catalog.js';
import { loadSettings } from '../settings.js';
import { checkInterrupted, DemoInterrupted, prepareEnvironment, unlessInterrupted, type DemoEnvironment } from './environment.js';
import { APP_NAMES, planDemo, type DemoPlan } from './plan.js';
import { resetDemo } from './reset.js';
import { RoutingTrace } from './routing-trace.js';
import { addValid, closingPayments, generateDemoStream, StreamProducer, type DemoStream } from './stream.js';
import { DemoDeployment } from './deployment.js';
import { DemoProgress } from './progress.js';
import { groupTarget, sinkTargets, waitCaughtUp } from './catch-up.js';
import { runChecks, type Check, type Facts } from './checks.js';

export interface DemoOptions {
  /** records per application (events, duplicates and malformed records together); default 5000 */
  count?: number;
  seed?: number;
  /** share of re-sent events; default 0.05 */
  duplicates?: number;
  /** share of malformed records; default 0.01 */
  malformed?: number;
  /** key prefix of everything the Redis sink writes; default WEIR_REDIS_PREFIX or `weir` */
  redisPrefix?: string;
  /** keep running after the summary until interrupted */
  serve?: boolean;
  /** where the settings come from; default process.env */
  env?: NodeJS.ProcessEnv;
  /** SIGINT/SIGTERM: abort with the signal's name as the reason */
  signal?: AbortSignal;
  /** the summary (stdout by default) */
  out?: (line: string) => void;
  /** progress and notes (stderr by default) */
  progressStream?: NodeJS.WriteStream;
}

export interface DemoResult {
  exitCode: number;
  checks: Check[];
  interrupted?: string;
  error?: Error;
}

const DEADLINE_MS = 48 * 3_600_000; // the payments application's default settlement deadline

export async function runDemo(opts: DemoOptions = {}): Promise<DemoResult> {
  const started = Date.now();
  const signal = opts.signal ?? new AbortController().signal;
  const out = opts.out ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const progress = new DemoProgress(opts.progressStream ?? process.stderr);
  const note = (line: string) => progress.note(line);
  const count = opts.count ?? 5000;
  const seed = opts.seed ?? 42;
  const settings = loadSettings(opts.env ?? process.env);
  const redisPrefix = opts.redisPrefix ?? (opts.env ?? process.env).WEIR_REDIS_PREFIX ?? 'weir';

  const logFile = path.join(settings.WEIR_RUN_DIR, 'demo.log');
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const logDestination = pino.destination({ dest: logFile, sync: true, append: false });
  const logger: Logger = pino({ level: settings.WEIR_LOG_LEVEL }, logDestination);

  let env: DemoEnvironment | null = null;
  let admin: Admin | null = null;
  let deployment: DemoDeployment | null = null;
  let producer: StreamProducer | null = null;
  let pgClient: pg.Client | null = null;
  let redis: Redis | null = null;
  let progressRunning = false;
  const result: DemoResult = { exitCode: 1, checks: [] };
  let serving = false;

  try {
    note(`weir demo: ${count} records per application, seed ${seed}; log: ${logFile}`);
    env = await prepareEnvironment(settings, note, signal);
    note(`services: Kafka ${env.describe.kafka}, registry ${env.describe.registry}, Postgres ${env.describe.postgres}, Redis ${env.describe.redis} (prefix ${redisPrefix})`);

    const serdeFor = avroSerdesFor(env.registry);
    const trace = new RoutingTrace();
    const plan = planDemo(settings, (app) => (app === 'routing' ? trace.wrap(serdeFor) : serdeFor), redisPrefix);
    admin = env.kafka.admin();
    await unlessInterrupted(admin.connect(), signal);

    // 2. reset, 3. topics and schemas
    const reset = await resetDemo(env, plan, admin, signal);
    note(
      `reset: topics deleted and created afresh (${reset.topicsCreated.length} catalog topics, ${plan.partitions} partitions), ` +
        `groups ${reset.groups.length > 0 ? reset.groups.join(', ') : '(none yet)'} deleted, tables ${reset.truncated.join(', ')} truncated, ` +
        `${reset.redisKeys} Redis keys under ${redisPrefix}: deleted, local state under ${plan.stateDir} wiped`,
    );
    const registered = await unlessInterrupted(
      registerSchemas(env.registry, topicContracts.map((c) => ({ subject: subjectOf(c.topic), schema: c.valueSchema }))),
      signal,
    );
    note(`schemas: ${registered.length} subjects registered (${registered.filter((r) => r.new).length} new)`);

    // 4. deploy
    let routingAborts = 0;
    deployment = new DemoDeployment(env, plan, serdeFor, logger, (err) => note(`FAILED: ${err.message}`));
    for (const name of APP_NAMES) {
      const worker = deployment.workers.get(name)!;
      const outputs = new Set(plan.apps[name].outputTopics);
      worker.on('processed', (i) => progress.onProcessed(name, i.records));
      worker.on('dead-letter', () => progress.onDeadLetter(name));
      worker.on('task.committed', (i) => {
        for (const [topic, k] of i.outputs) if (outputs.has(topic)) progress.onOutputs(name, k);
      });
      worker.on('task.aborted', (i) => {
        logger.warn(i, 'transaction aborted');
        if (name === 'routing') routingAborts++;
      });
    }
    for (const runner of deployment.sinks) runner.on('flush', (e) => progress.onSinkFlush(runner.name, e.records, e.rows));
    note('starting 3 workers (weir-routing, weir-trades, weir-payments) and the Postgres and Redis sinks …');
    // not raced with an interrupt: a worker stopped halfway through its start could stay in its group
    await deployment.start();
    checkInterrupted(signal);
    note(`metrics and health: ${deployment.health!.url}/metrics, ${deployment.health!.url}/health`);

    // 5. the stream
    // The stream ends a settlement deadline (and a bit) ago: the closing payments at its end + deadline are then not
    // in the future, where the broker refuses timestamps (log.message.timestamp.after.max.ms, 1 h by default).
    const now = Date.now() - DEADLINE_MS - 2 * 3_600_000;
    const stream = generateDemoStream({ count, seed, duplicates: opts.duplicates ?? 0.05, malformed: opts.malformed ?? 0.01, now });
    const perApp = Object.fromEntries(APP_NAMES.map((a) => [a, stream.stats[a].records])) as Record<ApplicationName, number>;
    note(`producing ${stream.records.length} records: ${describeStream(stream)}`);
    progress.start(stream.records.length, perApp, plan.sinks.map((k) => k.name));
    progressRunning = true;
    producer = new StreamProducer(env.kafka, serdeFor, plan.partitions);
    const failure = () => deployment!.failure;
    await producer.send(stream.records, signal, (sent) => {
      progress.onProduced(sent.length);
      if (failure()) throw failure();
    });

    // 6. catch up; close the payments day; catch up again, then the sinks
    const apps = (names: readonly ApplicationName[]) => names.map((a) => groupTarget(admin!, plan.apps[a].applicationId, plan.apps[a].inputTopics));
    await waitCaughtUp(admin, apps(APP_NAMES), { signal, failure });
    const lastPayment = stream.valid.payments.reduce((m, r) => Math.max(m, r.value.eventTime), 0);
    const closing = closingPayments(plan.partitions, lastPayment + DEADLINE_MS + 3_600_000, seed);
    progress.addToProduce(closing.length);
    progress.addExpected('payments', closing.length);
    await producer.send(closing, signal, (sent) => progress.onProduced(sent.length));
    for (const r of closing) addValid(stream.valid, r);
    await waitCaughtUp(admin, apps(['payments']), { signal, failure });

    pgClient = new pg.Client({ ...env.pg, application_name: 'weir-demo' });
    pgClient.on('error', () => undefined);
    await pgClient.connect();
    redis = new Redis({ ...env.redis, lazyConnect: true, connectionName: 'weir-demo', maxRetriesPerRequest: 2 });
    redis.on('error', () => undefined);
    await redis.connect();
    await waitCaughtUp(admin, sinkTargets(plan, pgClient, redis), { signal, failure });
    progress.stop();
    progressRunning = false;

    // 7. the summary
    note('everything processed and in the sinks; checking …');
    const { checks, facts } = await runChecks({ plan, stream, closing, trace, routingAborts, kafka: env.kafka, admin, pg: pgClient, redis, serdeFor });
    result.checks = checks;
    const failed = checks.filter((c) => c.status === 'fail');
    result.exitCode = failed.length === 0 ? 0 : 1;
    printSummary(out, { stream, closing: closing.length, checks, facts, plan, env, healthUrl: deployment.health!.url, logFile, seconds: (Date.now() - started) / 1000, serve: opts.serve === true });

    if (opts.serve) {
      serving = true;
      note('serving (metrics, health, sinks) until Ctrl-C …');
      await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
    }
  } catch (err) {
    if (progressRunning) progress.stop();
    if (err instanceof DemoInterrupted || signal.aborted) {
      result.interrupted = err instanceof DemoInterrupted ? err.signal : String(signal.reason);
      result.exitCode = result.interrupted === 'SIGTERM' ? 143 : 130;
      note(`${result.interrupted}: stopping …`);
    } else {
      result.error = err instanceof Error ? err : new Error(String(err));
      result.exitCode = 1;
      logger.error({ err }, 'the demo failed');
      note(`FAILED: ${result.error.message}`);
    }
  } finally {
    // after the summary, an interrupt of --serve ends with the summary's code
    if (serving) result.interrupted = undefined;
    const stopping = Date.now();
    const steps = [
      producer?.close(),
      deployment?.stop(),
      pgClient?.end().catch(() => undefined),
      redis?.quit().catch(() => redis?.disconnect()),
    ];
    const stopped = await withTimeout(Promise.all(steps), 45_000);
    await admin?.disconnect().catch(() => undefined);
    await withTimeout(env?.release() ?? Promise.resolve(), 30_000);
    const took = `${((Date.now() - stopping) / 1000).toFixed(1)} s`;
    if (!stopped) note('stopping took longer than 45 s; leaving anyway (the next run resets everything)');
    else if (deployment) note(`stopped cleanly in ${took}: workers committed and left their groups, sinks flushed, services released`);
    else if (env) note(`stopped cleanly in ${took}: services released`);
    logDestination.flushSync();
  }
  return result;
}

function describeStream(stream: DemoStream): string {
  return APP_NAMES.map((a) => {
    const s = stream.stats[a];
    return `${a} ${s.records} (${s.duplicates} duplicates, ${s.malformed} malformed)`;
  }).join(', ');
}

interface SummaryInput {
  stream: DemoStream;
  closing: number;
  checks: Check[];
  facts: Facts;
  plan: DemoPlan;
  env: DemoEnvironment;
  healthUrl: string;
  logFile: string;
  seconds: number;
  serve: boolean;
}

function printSummary(out: (line: string) => void, s: SummaryInput): void {
  const { plan, env, facts } = s;
  const fmt = (x: number) => x.toLocaleString('en-US');
  out('');
  out('SUMMARY');
  for (const a of APP_NAMES) {
    const st = s.stream.stats[a];
    const extra = a === 'payments' ? ` (+${s.closing} closing records that move stream time past every deadline)` : '';
    out(`  sent     ${a.padEnd(9)}${fmt(st.records)} records: ${fmt(st.events)} events, ${fmt(st.duplicates)} duplicates, ${fmt(st.malformed)} malformed (${fmt(st.undecodable)} not Avro)${extra}`);
  }
  for (const c of s.checks) {
    out(`  ${c.status.toUpperCase().padEnd(4)}     ${c.name}: ${c.summary}`);
    for (const d of c.details) out(`               ${d}`);
  }
  const tenant = facts.sampleTenant ?? '<tenantId>';
  const account = facts.sampleAccount ?? '<accountId>';
  const p = plan.redisPrefix;
  const redisDb = env.redis.db ?? 0;
  out('');
  out('WHERE TO LOOK NEXT');
  out(`  Postgres  ${env.describe.postgres}, schema ${plan.schema}: routing_decisions (${fmt(facts.decisions)}), positions (${fmt(facts.positions)}), ledger_entries (${fmt(facts.ledgerEntries)}), reconciliations (${fmt(facts.reconciliations)}), sink_offsets`);
  out(`            psql '${env.describe.postgres}' -c "SELECT status, count(*), sum(difference) FROM ${plan.schema}.reconciliations GROUP BY status"`);
  out(`            psql '${env.describe.postgres}' -c "SELECT currency, side, sum(amount) FROM ${plan.schema}.ledger_entries GROUP BY 1, 2 ORDER BY 1, 2"`);
  out(`  Redis     ${env.describe.redis}: ${p}:position:<accountId>, ${p}:routing-decision:<tenantId>:<conversationId>, ${p}:agent-load:<tenantId>, ${p}:queue-depth:<tenantId>, ${p}:offsets:<sink>`);
  out(`            redis-cli -n ${redisDb} HGETALL ${p}:agent-load:${tenant}     redis-cli -n ${redisDb} HGETALL ${p}:position:${account}`);
  out(`  Kafka     ${env.describe.kafka}: outputs routing-decisions, positions, ledger-entries, reconciliations; dead letters ${APP_NAMES.map((a) => plan.apps[a].deadLetterTopic).join(', ')}`);
  out(`  Metrics   ${s.healthUrl}/metrics and ${s.healthUrl}/health ${s.serve ? '(serving until Ctrl-C)' : '(while the demo runs; `npm start -- --serve` keeps them up after the summary)'}`);
  out(`  Logs      ${s.logFile}`);
  out('');
  const failed = s.checks.filter((c) => c.status === 'fail');
  const skipped = s.checks.filter((c) => c.status === 'skip');
  const passed = s.checks.length - failed.length - skipped.length;
  if (failed.length === 0) {
    out(`ALL CHECKS PASSED (${passed}/${s.checks.length}${skipped.length > 0 ? `, ${skipped.length} not checked` : ''}) in ${s.seconds.toFixed(1)} s`);
  } else {
    out(`CHECKS FAILED: ${failed.map((c) => c.name).join(', ')} (${passed}/${s.checks.length} passed) in ${s.seconds.toFixed(1)} s`);
  }
}

async function withTimeout(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---- the command line --------------------------------------------------------------------------------------------

const USAGE = `usage: npm start -- [options]     (or: tsx cli/demo/main.ts [options])

Starts Kafka and the schema registry when KAFKA_BROKERS / SCHEMA_REGISTRY_URL are not set, resets and deploys the
three applications with their Postgres and Redis sinks, sends a generated mixed stream, and prints a summary it
checks itself. Exit code 0 when every check passes, 1 otherwise, 130 when interrupted.

options:
  --count <n>         records per application (events, duplicates, malformed); default 5000
  --seed <n>          seed of the generators; default 42
  --duplicates <r>    share of re-sent events, 0..1; default 0.05
  --malformed <r>     share of malformed records, 0..1; default 0.01
  --redis-prefix <p>  key prefix in Redis; default WEIR_REDIS_PREFIX or "weir"
  --serve             keep running after the summary (metrics, health, sinks) until Ctrl-C
  -h, --help

settings (environment): KAFKA_BROKERS, SCHEMA_REGISTRY_URL, DATABASE_URL, REDIS_URL, WEIR_PARTITIONS, WEIR_STATE_DIR,
WEIR_RUN_DIR (log), WEIR_HTTP_HOST, WEIR_HTTP_PORT, WEIR_GUARANTEE, WEIR_COMMIT_INTERVAL_MS, WEIR_LOG_LEVEL`;

export function parseDemoArgs(argv: string[]): DemoOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      count: { type: 'string' },
      seed: { type: 'string' },
      duplicates: { type: 'string' },
      malformed: { type: 'string' },
      'redis-prefix': { type: 'string' },
      serve: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const whole = (name: string, v: string | undefined, min: number) => {
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v) || Number(v) < min || !Number.isSafeInteger(Number(v))) throw new Error(`--${name} takes a whole number >= ${min}, not '${v}'`);
    return Number(v);
  };
  const share = (name: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    const x = Number(v);
    if (v.trim() === '' || !Number.isFinite(x) || x < 0 || x >= 1) throw new Error(`--${name} takes a share from 0 up to (not including) 1, such as 0.05, not '${v}'`);
    return x;
  };
  const prefix = values['redis-prefix'];
  if (prefix !== undefined && !/^[A-Za-z0-9._-]+$/.test(prefix)) throw new Error(`--redis-prefix takes letters, digits, '.', '_' and '-', not '${prefix}'`);
  return {
    count: whole('count', values.count, 1),
    seed: whole('seed', values.seed, 0),
    duplicates: share('duplicates', values.duplicates),
    malformed: share('malformed', values.malformed),
    redisPrefix: prefix,
    serve: values.serve,
  };
}

async function main(): Promise<void> {
  let opts: DemoOptions | 'help';
  try {
    opts = parseDemoArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  if (opts === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (name: NodeJS.Signals) => {
    if (++signals > 1) {
      process.stderr.write(`${name} again: exiting at once\n`);
      process.exit(name === 'SIGTERM' ? 143 : 130);
    }
    controller.abort(name);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const result = await runDemo({ ...opts, signal: controller.signal }).catch((err: unknown) => {
    // a setting that is not valid (runDemo reports everything later itself)
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    return { exitCode: 1 };
  });
  // kafkajs and the pools may leave timers behind: the result is decided, so leave now
  process.exit(result.exitCode);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) void main();
