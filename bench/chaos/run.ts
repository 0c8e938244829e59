/**
 * One chaos run, start to end:
 *  1. a Kafka broker of its own (broker.ts) and the schema registry (SCHEMA_REGISTRY_URL, else the local one);
 *  2. the main job's reset (cli/demo/reset.ts) with `weir deploy`'s per-application sinks: topics created afresh,
 *     the sink tables of its Postgres schema truncated, its Redis keys deleted; the schemas registered;
 *  3. for each application N `weir worker` processes and its `weir sink` processes (fleet.ts), all ready;
 *  4. the main job's seeded stream — duplicates, late events, a share of malformed records — sent as steady load
 *     (load.ts) while the fault rounds run (rounds.ts);
 *  5. the closing payments (stream time past every settlement deadline), then waiting until every application has
 *     processed its inputs and every sink has stored the end offsets of what it reads;
 *  6. the main job's checks (every table and key against a recomputation from the input, dead letters = malformed
 *     records sent, duplicates counted) and the chaos checks (checks.ts), printed as a table (summary.ts);
 *  7. everything stopped and removed: processes, the broker and its data, and (unless --keep, or a failure whose
 *     traces are worth keeping) the Postgres schema, the Redis keys, logs and state.
 * Exit code 0 only when every check passed; 1 otherwise or when the run failed; 130/143 when interrupted.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import type { Admin } from 'kafkajs';
import { avroSerdesFor } from '../../topologies/index.js';
import { registerSchemas } from '../../schemas/registration.js';
import { subjectOf, topicContracts } from '../../schemas/catalog.js';
import { dropSchema } from '../../sinks/postgres/migrate.js';
import { PartitionReader } from '../../runtime/partition-reader.js';
import { loadSettings } from '../../cli/settings.js';
import { prng } from '../../cli/generators/routing.js';
import { DemoInterrupted, prepareEnvironment, unlessInterrupted, type DemoEnvironment } from '../../cli/demo/environment.js';
import { APP_NAMES, planDemo } from '../../cli/demo/plan.js';
import { resetDemo } from '../../cli/demo/reset.js';
import { deleteUnder } from '../../sinks/redis/keys.js';
import { addValid, closingPayments, generateDemoStream, StreamProducer, type DemoRecord, type DemoStream } from '../../cli/demo/stream.js';
import { groupTarget, sinkTargets, waitCaughtUp } from '../../cli/demo/catch-up.js';
import { runChecks, type Check } from '../../cli/demo/checks.js';
import { CHAOS_KAFKA_HOME, ChaosBroker } from './broker.js';
import { Fleet } from './fleet.js';
import { Journal } from './journal.js';
import { SteadyLoad } from './load.js';
import { runRounds } from './rounds.js';
import { chaosChecks } from './checks.js';
import { allPassed, printSummary } from './summary.js';
import type { ChaosOptions } from './options.js';

/** the payments application's default settlement deadline */
const DEADLINE_MS = 48 * 3_600_000;
const READY_TIMEOUT_MS = 180_000;
const STOP_GRACE_MS = 30_000;

export interface ChaosIo {
  /** action lines and the summary (stdout) */
  out: (line: string) => void;
  /** progress notes (stderr) */
  note: (line: string) => void;
  signal: AbortSignal;
}

export interface ChaosResult {
  exitCode: number;
  checks: Check[];
}

export async function runChaos(opts: ChaosOptions, io: ChaosIo): Promise<ChaosResult> {
  const { out, note, signal } = io;
  const journal = new Journal(out);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'weir-chaos-'));
  const logFile = path.join(work, 'chaos.log');
  const log = (line: string) => fs.appendFileSync(logFile, `${new Date().toISOString()} ${line}\n`);
  const broker = new ChaosBroker(opts.kafkaPort, (line) => {
    log(line);
    note(line);
  });
  const given = process.env;
  if (given.KAFKA_BROKERS) note(`KAFKA_BROKERS (${given.KAFKA_BROKERS}) is not used: the chaos run restarts its broker, so it runs one of its own`);
  const childEnv: Record<string, string> = {
    KAFKA_BROKERS: broker.brokers,
    WEIR_PG_SCHEMA: given.WEIR_PG_SCHEMA ?? 'weir_chaos',
    WEIR_REDIS_PREFIX: given.WEIR_REDIS_PREFIX ?? 'weir-chaos',
    WEIR_APP_PREFIX: given.WEIR_APP_PREFIX ?? 'chaos-',
    WEIR_STATE_DIR: path.join(work, 'state'),
    WEIR_RUN_DIR: path.join(work, 'run'),
    WEIR_HTTP_PORT: '0',
  };
  const settings = loadSettings({ ...given, ...childEnv });
  const result: ChaosResult = { exitCode: 1, checks: [] };

  let env: DemoEnvironment | null = null;
  let admin: Admin | null = null;
  let fleet: Fleet | null = null;
  let producer: StreamProducer | null = null;
  let control: pg.Client | null = null;
  let redis: Redis | null = null;
  let reader: PartitionReader | null = null;
  let brokerStarted = false;
  let fatal: Error | null = null;
  try {
    note(`chaos (${opts.profile}): ${opts.rounds} rounds of ${opts.roundSeconds} s, ${opts.count} records per application, seed ${opts.seed}; work directory ${work}`);
    await unlessInterrupted(broker.start(), signal);
    brokerStarted = true;
    journal.action(`Kafka broker of the chaos run started at ${broker.brokers}`);
    env = await prepareEnvironment(settings, note, signal);
    const serdeFor = avroSerdesFor(env.registry);
    const plan = planDemo(settings, () => serdeFor, settings.WEIR_REDIS_PREFIX, { sinks: 'per-application', schema: settings.WEIR_PG_SCHEMA });
    admin = env.kafka.admin();
    await unlessInterrupted(admin.connect(), signal);
    await resetDemo(env, plan, admin, signal);
    await unlessInterrupted(registerSchemas(env.registry, topicContracts.map((c) => ({ subject: subjectOf(c.topic), schema: c.valueSchema }))), signal);
    journal.action(`reset: ${plan.allTopics.length} topics created (${plan.partitions} partitions), Postgres schema ${plan.schema} truncated, Redis keys ${plan.redisPrefix}:* deleted; schemas registered at ${env.registryUrl}`);

    // 3. the processes
    fleet = new Fleet({
      runRoot: childEnv.WEIR_RUN_DIR!,
      env: { ...childEnv, SCHEMA_REGISTRY_URL: env.registryUrl, DATABASE_URL: settings.DATABASE_URL, REDIS_URL: settings.REDIS_URL, WEIR_PARTITIONS: String(plan.partitions) },
      log,
      onOwnExit: (slot, how) => {
        journal.ownExits.push(`${slot.label}: ${how}`);
        journal.action(`${slot.label} exited on its own with ${how}; starting it again`);
        fleet!.restart(slot, READY_TIMEOUT_MS).then(
          (pid) => journal.action(`${slot.label} started again (pid ${pid}) and ready`),
          (err: Error) => (fatal ??= new Error(`${slot.label} could not be started again: ${err.message}`)),
        );
      },
    });
    for (const app of APP_NAMES) fleet.add(app, plan.apps[app].applicationId, opts.workers);
    const t = Date.now();
    note(`starting ${fleet.workers.length} workers and ${fleet.sinks.length} sinks …`);
    await unlessInterrupted(fleet.startAll(READY_TIMEOUT_MS), signal);
    journal.action(
      `${fleet.workers.length} workers (${opts.workers} per application) and ${fleet.sinks.length} sinks (${fleet.sinks.map((s) => s.sink!.name).join(', ')}) ready in ${((Date.now() - t) / 1000).toFixed(1)} s`,
    );

    // 4. load and rounds
    // The stream ends a settlement deadline (and a bit) ago, as the main job's does, so the closing payments are not
    // in the future; the reset gave the topics 30 days' retention, so nothing of it expires during the run.
    const stream = generateDemoStream({ count: opts.count, seed: opts.seed, duplicates: opts.duplicates, malformed: opts.malformed, now: Date.now() - DEADLINE_MS - 2 * 3_600_000 });
    const rate = Math.max(1, Math.ceil(stream.records.length / (opts.rounds * opts.roundSeconds)));
    producer = new StreamProducer(env.kafka, serdeFor, plan.partitions);
    const load = new SteadyLoad(producer, stream.records, rate, signal);
    journal.action(`load: ${stream.records.length} records at ${rate} records/s (${describe(stream)})`);
    control = new pg.Client({ ...env.pg, application_name: 'weir-chaos' });
    control.on('error', () => undefined);
    await control.connect();
    redis = new Redis({ ...env.redis, lazyConnect: true, connectionName: 'weir-chaos', maxRetriesPerRequest: 2 });
    redis.on('error', () => undefined);
    await redis.connect();
    await runRounds({
      fleet,
      broker,
      load,
      journal,
      pg: control,
      database: env.pg.database,
      redis,
      random: prng((opts.seed ^ 0x5eed) >>> 0),
      rounds: opts.rounds,
      roundSeconds: opts.roundSeconds,
      readyTimeoutMs: READY_TIMEOUT_MS,
      brokerDownMs: opts.brokerDownSeconds * 1000,
      signal,
    });
    await unlessInterrupted(load.done, signal);
    journal.action(`load: all ${stream.records.length} records sent`);

    // 5. closing payments, catch-up
    const failure = () => fatal;
    const groups = (names: typeof APP_NAMES) => names.map((a) => groupTarget(admin!, plan.apps[a].applicationId, plan.apps[a].inputTopics));
    await waitCaughtUp(admin, groups(APP_NAMES), { signal, failure });
    const lastPayment = stream.valid.payments.reduce((m, r) => Math.max(m, r.value.eventTime), 0);
    const closing: DemoRecord[] = closingPayments(plan.partitions, lastPayment + DEADLINE_MS + 3_600_000, opts.seed);
    await producer.send(closing, signal, () => undefined);
    for (const r of closing) addValid(stream.valid, r);
    await waitCaughtUp(admin, groups(['payments']), { signal, failure });
    await waitCaughtUp(admin, sinkTargets(plan, control, redis), { signal, failure });
    journal.action('every application processed its inputs and every sink stored the end offsets of what it reads; checking …');

    // 6. checks
    reader = new PartitionReader(env.kafka);
    const demo = await runChecks({ plan, stream, closing, trace: null, routingAborts: 0, kafka: env.kafka, reader, admin, pg: control, redis, serdeFor });
    const chaos = await chaosChecks({ plan, stream, admin, reader, decisions: demo.decisions, pg: control, redis, serdeFor, journal });
    result.checks = [...demo.checks, ...chaos];
    result.exitCode = allPassed(result.checks) ? 0 : 1;
    printSummary(out, { opts, stream, closing: closing.length, journal, checks: result.checks, seconds: journal.seconds });
  } catch (err) {
    if (err instanceof DemoInterrupted || signal.aborted) {
      const name = err instanceof DemoInterrupted ? err.signal : String(signal.reason);
      result.exitCode = name === 'SIGTERM' ? 143 : 130;
      note(`${name}: stopping …`);
    } else {
      result.exitCode = 1;
      const message = err instanceof Error ? err.message : String(err);
      log(`FAILED: ${err instanceof Error ? (err.stack ?? message) : message}`);
      out(`CHAOS RUN FAILED: ${message}`);
    }
  } finally {
    const keep = opts.keep || result.exitCode !== 0;
    if (fleet) {
      const clean = await fleet.stopAll(STOP_GRACE_MS);
      journal.action(`stopped every worker and sink${clean ? ' cleanly' : ' (not all cleanly: see the logs)'}`);
    }
    await producer?.close();
    await reader?.close().catch(() => undefined);
    await admin?.disconnect().catch(() => undefined);
    await control?.end().catch(() => undefined);
    await redis?.quit().catch(() => redis?.disconnect());
    if (!keep && env) await removeData(env, settings.WEIR_PG_SCHEMA, settings.WEIR_REDIS_PREFIX).catch((e: Error) => note(`cleaning up: ${e.message}`));
    await env?.release();
    if (brokerStarted) await broker.remove(keep).catch((e: Error) => note(`removing the chaos broker: ${e.message}`));
    if (keep) {
      note(
        `kept: ${work} (chaos.log, members' logs under run/, state), Postgres schema ${settings.WEIR_PG_SCHEMA}, Redis keys ${settings.WEIR_REDIS_PREFIX}:*, ` +
          `the broker's data under ${path.relative(process.cwd(), CHAOS_KAFKA_HOME)} (stopped; the next chaos run starts afresh)`,
      );
    }
    else fs.rmSync(work, { recursive: true, force: true });
  }
  return result;
}

/** The run's tables and keys: its Postgres schema and the Redis keys under its prefix. */
async function removeData(env: DemoEnvironment, schema: string, prefix: string): Promise<void> {
  const client = new pg.Client({ ...env.pg, application_name: 'weir-chaos' });
  client.on('error', () => undefined);
  const redis = new Redis({ ...env.redis, lazyConnect: true, connectionName: 'weir-chaos', maxRetriesPerRequest: 2 });
  redis.on('error', () => undefined);
  try {
    await client.connect();
    await dropSchema(client, schema);
    await redis.connect();
    await deleteUnder(redis, prefix);
  } finally {
    await client.end().catch(() => undefined);
    await redis.quit().catch(() => redis.disconnect());
  }
}

function describe(stream: DemoStream): string {
  return APP_NAMES.map((a) => `${a} ${stream.stats[a].records}: ${stream.stats[a].duplicates} duplicates, ${stream.stats[a].malformed} malformed`).join('; ');
}
