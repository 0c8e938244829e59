/**
 * Local single-node Kafka broker (KRaft, combined broker+controller) for dev/test.
 *
 *   import { ensureKafka } from './infra/kafka.js'
 *   const kafka = await ensureKafka()   // { brokers: '127.0.0.1:19092', started, stop, release }
 *
 *   tsx infra/kafka.ts start|stop|status|reset
 *
 * - If KAFKA_BROKERS is set, nothing is started and that value is returned.
 * - Jars come from Maven Central via infra/kafka/pom.xml (mvn dependency:copy-dependencies)
 *   into .local/kafka/libs; they are re-fetched whenever the pom changes.
 * - Everything the broker writes lives under .local/kafka/ (config, data/, broker.log, broker.pid).
 * - A broker started by this project that is still running is reused (started=false).
 * - Several processes (e.g. concurrent vitest runs) may share the broker: each ensureKafka()
 *   takes a lease; release() drops it and stops the broker when it was started by
 *   ensureKafka() (not pinned by `tsx infra/kafka.ts start`) and no other live process holds
 *   a lease. stop() stops it unconditionally.
 * - Process handling, leases, the lock, the Maven fetch and the CLI are infra/local-service.ts;
 *   this module has what is Kafka's: the jars, the KRaft config, the storage format, the JVM.
 * - `home` (ensureKafka, stopKafka, resetKafka, kafkaStatus, kafkaLeaseHolders) runs another broker of the project beside
 *   this one: its own config, data, pid, log and leases under that directory, the same jars, its own port
 *   (bench/chaos.ts restarts one of its own this way without touching the shared broker).
 *
 * Paths are resolved from this module's location, never from the cwd.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import kafkajs from 'kafkajs';
import { HOST, LocalService, pomHash, pomProperty, portAnswers, rel, removeFile, REPO_ROOT, run } from './local-service.js';
import type { LaunchSpec, ServiceHandle, ServiceOptions, ServiceStatus } from './local-service.js';

const { Kafka, logLevel } = kafkajs;

export { REPO_ROOT } from './local-service.js';
const POM = path.join(REPO_ROOT, 'infra', 'kafka', 'pom.xml');
export const KAFKA_HOME = path.join(REPO_ROOT, '.local', 'kafka');
/** The jars, shared by every broker home. */
const LIBS = path.join(KAFKA_HOME, 'libs');
const LIBS_STAMP = path.join(LIBS, '.weir-fetched');

/** What a broker home holds besides the LocalService files. */
const homePaths = (home: string) => ({
  data: path.join(home, 'data'),
  dataStamp: path.join(home, 'data.version'),
  config: path.join(home, 'server.properties'),
  log4jConfig: path.join(home, 'log4j2.properties'),
});

const services = new Map<string, LocalService>();

/** broker.pid, broker.log, broker.autostop, leases/, .lock/ under the home (.local/kafka by default). */
function serviceFor(home: string): LocalService {
  const key = path.resolve(home);
  let s = services.get(key);
  if (!s) {
    s = new LocalService({
      name: key === KAFKA_HOME ? 'kafka' : `kafka (${rel(key)})`,
      noun: 'broker',
      pidLabel: 'broker pid',
      home: key,
      isServiceCommand: (argv) => argv.includes('kafka.Kafka'),
      logErrorLine: /\] (ERROR|FATAL) /,
      lockWaitMs: 180_000,
      defaultPort: 19092,
      address: (port) => `${HOST}:${port}`,
      answers: adminAnswers,
      externalEnv: 'KAFKA_BROKERS',
      remedy: `"tsx infra/kafka.ts stop" (or reset)${key === KAFKA_HOME ? '' : `, or end the process whose cwd is ${rel(key)}`}`,
    });
    services.set(key, s);
  }
  return s;
}

const service = serviceFor(KAFKA_HOME);

/**
 * Defaults: startTimeoutMs 60 s (until kafkajs admin can talk to the broker), heap '512m'.
 * log gets: fetching jars, formatting, starting.
 */
export interface EnsureKafkaOptions extends ServiceOptions {
  /** Broker (client) port. Default 19092. */
  port?: number;
  /** KRaft controller port. Default port + 1. */
  controllerPort?: number;
  /**
   * Another broker home than .local/kafka (a second broker beside the shared one; give it another port too).
   * KAFKA_BROKERS and WEIR_LOCAL_KAFKA_PORT are then ignored: the broker of that home is started or reused.
   */
  home?: string;
}

/** stop() and release() are no-ops when the brokers came from KAFKA_BROKERS. */
export interface KafkaHandle extends ServiceHandle {
  /** Comma-separated bootstrap servers, e.g. "127.0.0.1:19092". */
  brokers: string;
}

// ---------------------------------------------------------------------------
// public API

export async function ensureKafka(opts: EnsureKafkaOptions = {}): Promise<KafkaHandle> {
  const home = opts.home === undefined ? KAFKA_HOME : path.resolve(opts.home);
  const external = opts.home === undefined ? process.env.KAFKA_BROKERS?.trim() : undefined;
  if (external) {
    return { brokers: external, started: false, stop: async () => {}, release: async () => {} };
  }
  const svc = serviceFor(home);

  // WEIR_LOCAL_KAFKA_PORT moves the local broker (and its controller, one above) off the default ports.
  const envPort = opts.home === undefined ? Number(process.env.WEIR_LOCAL_KAFKA_PORT) || undefined : undefined;
  const port = opts.port ?? envPort ?? 19092;
  const controllerPort = opts.controllerPort ?? port + 1;
  const brokers = `${HOST}:${port}`;
  const timeoutMs = opts.startTimeoutMs ?? 60_000;
  const log = opts.log ?? (() => {});
  // under the lock, when no broker of ours is running (a running one is reused)
  const prepare = async (): Promise<LaunchSpec> => {
    if (await portAnswers(HOST, port)) {
      throw new Error(
        `kafka: port ${port} on ${HOST} is in use by a process this project did not start. ` +
          `Set KAFKA_BROKERS=${brokers} to use it, or stop it.`,
      );
    }

    // jars, config, storage
    const version = pomProperty(POM, 'kafka.version', 'kafka');
    await ensureLibs(version, log);
    writeConfig(home, port, controllerPort);
    await ensureFormatted(home, version, log);

    log(`kafka: starting Apache Kafka ${version} at ${brokers} (log: ${rel(svc.logFile)})`);
    return {
      command: javaBin(),
      args: brokerArgs(opts.heap ?? '512m'),
      hint: 'is a JDK 17+ installed?',
      notReady: (alive) =>
        `broker ${alive ? `did not accept connections on ${brokers} within ${Math.round(timeoutMs / 1000)} s` : 'exited during startup'}`,
    };
  };

  const started = await svc.ensure({ port, timeoutMs, log, prepare });
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await svc.releaseLease();
  };
  return { brokers, started, stop: () => stopKafka(home), release };
}

/** Stops the broker started by this project (in `home`), if any. Resolves once no such process is left. */
export async function stopKafka(home: string = KAFKA_HOME): Promise<void> {
  await serviceFor(home).stop();
}

export interface KafkaStatus extends ServiceStatus {
  brokers: string;
}

export async function kafkaStatus(port = Number(process.env.WEIR_LOCAL_KAFKA_PORT) || 19092, home: string = KAFKA_HOME): Promise<KafkaStatus> {
  const { address, ...status } = await serviceFor(home).status(port);
  return { ...status, brokers: address };
}

/** Pids of the other live processes holding a lease on the broker of `home` (stale leases are removed). */
export function kafkaLeaseHolders(home: string = KAFKA_HOME): number[] {
  return serviceFor(home).otherLeaseHolders();
}

/** Stops the broker (of `home`) and deletes its data (topics, offsets, KRaft metadata). Keeps the jars. */
export async function resetKafka(home: string = KAFKA_HOME): Promise<void> {
  const svc = serviceFor(home);
  const { data, dataStamp } = homePaths(svc.home);
  await svc.withLock(async () => {
    await svc.stopLocked();
    fs.rmSync(data, { recursive: true, force: true });
    removeFile(dataStamp);
  });
}

// ---------------------------------------------------------------------------
// jars

/** The stamp records the pom's hash and every fetched jar; all must still match. */
function libsComplete(version: string): boolean {
  try {
    const [hash, ...jars] = fs.readFileSync(LIBS_STAMP, 'utf8').trim().split('\n');
    return (
      hash === pomHash(POM) &&
      jars.includes(`kafka_2.13-${version}.jar`) &&
      jars.every((jar) => fs.existsSync(path.join(LIBS, jar)))
    );
  } catch {
    return false;
  }
}

async function ensureLibs(version: string, log: (m: string) => void): Promise<void> {
  if (libsComplete(version)) return;
  log(`kafka: fetching Kafka ${version} jars with Maven into ${rel(LIBS)}`);
  const tmp = `${LIBS}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  await service.mavenFetch(POM, 'dependency:copy-dependencies', tmp, 'jars', LIBS);
  const jars = fs.readdirSync(tmp).filter((f) => f.endsWith('.jar')).sort();
  fs.writeFileSync(path.join(tmp, path.basename(LIBS_STAMP)), `${[pomHash(POM), ...jars].join('\n')}\n`);
  fs.rmSync(LIBS, { recursive: true, force: true });
  fs.renameSync(tmp, LIBS);
  if (!libsComplete(version)) throw new Error(`kafka: mvn succeeded but ${rel(LIBS)} lacks kafka_2.13-${version}.jar`);
}

// ---------------------------------------------------------------------------
// config + storage

function writeConfig(home: string, port: number, controllerPort: number): void {
  const { config, log4jConfig } = homePaths(home);
  // Paths are relative: the broker and the storage tool run with cwd = the home (.local/kafka).
  const props: Record<string, string | number | boolean> = {
    'process.roles': 'broker,controller',
    'node.id': 1,
    'controller.quorum.voters': `1@${HOST}:${controllerPort}`,
    listeners: `PLAINTEXT://${HOST}:${port},CONTROLLER://${HOST}:${controllerPort}`,
    'advertised.listeners': `PLAINTEXT://${HOST}:${port}`,
    'inter.broker.listener.name': 'PLAINTEXT',
    'controller.listener.names': 'CONTROLLER',
    'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
    'log.dirs': 'data',

    'num.partitions': 1,
    'default.replication.factor': 1,
    'min.insync.replicas': 1,
    'auto.create.topics.enable': false,
    'delete.topic.enable': true,

    // internal topics on a single node; few partitions so they are created quickly
    'offsets.topic.replication.factor': 1,
    'offsets.topic.num.partitions': 5,
    'offsets.topic.segment.bytes': 16 * 1024 * 1024,
    'transaction.state.log.replication.factor': 1,
    'transaction.state.log.min.isr': 1,
    'transaction.state.log.num.partitions': 5,
    'transaction.state.log.segment.bytes': 16 * 1024 * 1024,
    'share.coordinator.state.topic.replication.factor': 1,
    'share.coordinator.state.topic.min.isr': 1,
    'group.initial.rebalance.delay.ms': 0,

    // small machine (2 cores, 512 MB heap)
    'num.network.threads': 2,
    'num.io.threads': 4,
    'num.recovery.threads.per.data.dir': 1,
    'background.threads': 4,
    'log.cleaner.threads': 1,
    'log.cleaner.dedupe.buffer.size': 32 * 1024 * 1024,

    // dev/test data: small segments, short retention
    'log.segment.bytes': 16 * 1024 * 1024,
    'log.retention.hours': 24,
    'log.retention.bytes': 256 * 1024 * 1024,
    'log.retention.check.interval.ms': 60_000,
  };
  const text =
    '# Generated by infra/kafka.ts on every start; edits are overwritten.\n' +
    Object.entries(props)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n') +
    '\n';
  fs.writeFileSync(config, text);

  fs.writeFileSync(
    log4jConfig,
    [
      '# Generated by infra/kafka.ts. Broker logs go to stdout -> broker.log.',
      'status = warn',
      // keep logging through the broker's own shutdown (log4j's hook would stop it first)
      'shutdownHook = disable',
      'name = weir-local-kafka',
      'appender.stdout.type = Console',
      'appender.stdout.name = STDOUT',
      'appender.stdout.layout.type = PatternLayout',
      'appender.stdout.layout.pattern = [%d] %p %m (%c)%n',
      'rootLogger.level = INFO',
      'rootLogger.appenderRef.stdout.ref = STDOUT',
      'logger.request.name = kafka.request.logger',
      'logger.request.level = WARN',
      'logger.statechange.name = state.change.logger',
      'logger.statechange.level = WARN',
      '',
    ].join('\n'),
  );
}

async function ensureFormatted(home: string, version: string, log: (m: string) => void): Promise<void> {
  const { data: DATA, dataStamp: DATA_STAMP } = homePaths(home);
  const formatted = fs.existsSync(path.join(DATA, 'meta.properties'));
  let dataVersion: string | undefined;
  try {
    dataVersion = fs.readFileSync(DATA_STAMP, 'utf8').trim();
  } catch {
    /* none */
  }
  if (formatted && dataVersion === version) return;
  if (fs.existsSync(DATA)) {
    // Half-formatted, or written by another Kafka version (a newer metadata.version
    // cannot be read by an older broker). This is disposable dev/test data.
    log(`kafka: wiping ${rel(DATA)} (${formatted ? `written by Kafka ${dataVersion ?? 'unknown'}` : 'not formatted'})`);
    fs.rmSync(DATA, { recursive: true, force: true });
  }
  let clusterId = '';
  // KRaft cluster ids are 16 random bytes, base64url without padding; avoid a leading '-'
  // so the CLI does not take it for an option.
  while (!clusterId || clusterId.startsWith('-')) clusterId = randomBytes(16).toString('base64url');
  log(`kafka: formatting ${rel(DATA)} (cluster id ${clusterId})`);
  const res = await run(
    javaBin(),
    ['-Xmx256m', ...log4jArgs(), '-cp', classpath(), 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', 'server.properties'],
    home,
  );
  if (res.error || res.code !== 0) {
    throw new Error(`kafka: formatting storage failed (${res.error?.message ?? `exit ${res.code}`}):\n${res.output.slice(-4000)}`);
  }
  fs.writeFileSync(DATA_STAMP, `${version}\n`);
}

// ---------------------------------------------------------------------------
// the JVM

function javaBin(): string {
  const home = process.env.JAVA_HOME;
  return home ? path.join(home, 'bin', 'java') : 'java';
}

/** The shared jars (absolute: a broker runs with cwd = its own home). */
function classpath(): string {
  return path.join(LIBS, '*');
}

function log4jArgs(): string[] {
  return ['-Dlog4j2.configurationFile=log4j2.properties'];
}

/** The broker's JVM arguments; it runs with cwd = its home. */
function brokerArgs(heap: string): string[] {
  return [
    `-Xms128m`,
    `-Xmx${heap}`,
    '-XX:+UseG1GC',
    '-XX:MaxGCPauseMillis=20',
    '-XX:+ExitOnOutOfMemoryError',
    '-Djava.awt.headless=true',
    ...log4jArgs(),
    '-cp',
    classpath(),
    'kafka.Kafka',
    'server.properties',
  ];
}

async function adminAnswers(brokers: string, timeoutMs: number): Promise<boolean> {
  const [host, portText] = brokers.split(',')[0]!.split(':');
  if (!(await portAnswers(host!, Number(portText), timeoutMs))) return false;
  const admin = new Kafka({
    clientId: 'weir-infra-probe',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
    connectionTimeout: timeoutMs,
    requestTimeout: timeoutMs,
    retry: { retries: 0 },
  }).admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return cluster.brokers.length > 0 && cluster.controller !== null && cluster.controller >= 0;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

// ---------------------------------------------------------------------------
// CLI: tsx infra/kafka.ts start|stop|status|reset

service.runCli(import.meta.url, {
  start: async (log) => ensureKafka({ log }).then((k) => ({ started: k.started, address: k.brokers })),
  reset: async () => resetKafka().then(() => `wiped ${rel(homePaths(KAFKA_HOME).data)}`),
});
