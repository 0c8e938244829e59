/**
 * Local Apicurio Registry (Confluent-compatible API at /apis/ccompat/v7) for dev/test,
 * storing its data in the local PostgreSQL so schema ids survive a restart.
 *
 *   import { ensureRegistry } from './infra/registry.js'
 *   const reg = await ensureRegistry()   // { url: 'http://127.0.0.1:18081', started, stop, release }
 *
 *   tsx infra/registry.ts start|stop|status|reset
 *
 * - If SCHEMA_REGISTRY_URL is set, nothing is started and that value is returned.
 * - The distribution (io.apicurio:apicurio-registry-app:<version>:tar.gz:all) comes from
 *   Maven Central via infra/registry/pom.xml (mvn dependency:unpack) into .local/registry/dist;
 *   it is re-fetched whenever the pom changes.
 * - Apicurio 3.3 needs Java 21+: REGISTRY_JAVA_HOME, else JAVA_HOME, else the newest JDK under
 *   /usr/lib/jvm, else `java` on the PATH, whichever first is 21 or newer.
 * - Storage: database `weir_registry` on 127.0.0.1:5432 (user postgres; PGHOST/PGPORT/PGUSER/
 *   PGPASSWORD override), created with psql if missing. Apicurio creates its tables itself.
 * - Global default compatibility rule: BACKWARD (apicurio.rules.global.compatibility), visible
 *   as `GET /apis/ccompat/v7/config`; a `PUT /config` stored in the database overrides it.
 * - Listens on 127.0.0.1 only: HTTP on 18081, Quarkus management (health, metrics) on 18082.
 * - Everything it writes locally lives under .local/registry/ (dist/, registry.log, registry.pid).
 * - A registry started by this project that is still running is reused (started=false).
 * - Leases work as for the broker (infra/local-service.ts): release() stops an auto-started
 *   registry once no other live process uses it; one pinned with `tsx infra/registry.ts start`
 *   keeps running. Unlike the broker's, release() drops the lease of every handle this process holds.
 * - Process handling, leases, the lock, the Maven fetch and the CLI are infra/local-service.ts;
 *   this module has what is the registry's: the distribution, Java, PostgreSQL, Apicurio's settings.
 *
 * Paths are resolved from this module's location, never from the cwd.
 */
import fs from 'node:fs';
import path from 'node:path';
import { HOST, LocalService, pomHash, pomProperty, portAnswers, rel, REPO_ROOT, run } from './local-service.js';
import type { LaunchSpec, ServiceHandle, ServiceOptions, ServiceStatus } from './local-service.js';

export { REPO_ROOT } from './local-service.js';
const POM = path.join(REPO_ROOT, 'infra', 'registry', 'pom.xml');
export const REGISTRY_HOME = path.join(REPO_ROOT, '.local', 'registry');
const DIST = path.join(REGISTRY_HOME, 'dist');
const DIST_STAMP = path.join(DIST, '.weir-fetched');
const RUN_JAR = path.join(DIST, 'quarkus-run.jar');
/** Marks our JVMs on their command line, so they can be found without a pid file. */
const PROCESS_TAG = '-Dweir.infra=registry';

const DEFAULT_PORT = 18081;
export const DEFAULT_DATABASE = 'weir_registry';
/** Apicurio 3.3 is compiled for Java 21 (class file version 65). */
const MIN_JAVA = 21;

const service = new LocalService({
  name: 'registry',
  noun: 'registry',
  pidLabel: 'pid',
  home: REGISTRY_HOME,
  isServiceCommand: (argv) => argv.includes(PROCESS_TAG),
  logErrorLine: / (ERROR|FATAL) /,
  lockWaitMs: 300_000,
  defaultPort: DEFAULT_PORT,
  address: (port) => `http://${HOST}:${port}`,
  answers: registryAnswers,
  externalEnv: 'SCHEMA_REGISTRY_URL',
  remedy: '"tsx infra/registry.ts stop"',
});

/**
 * Defaults: startTimeoutMs 120 s (until the ccompat API answers), heap '384m'.
 * log gets: fetching, creating the database, starting.
 */
export interface EnsureRegistryOptions extends ServiceOptions {
  /** HTTP port. Default 18081. */
  port?: number;
  /** Quarkus management interface port (health, metrics). Default port + 1. */
  managementPort?: number;
  /** PostgreSQL database holding the registry's data. Default 'weir_registry'. */
  database?: string;
}

/**
 * stop() leaves the data in PostgreSQL; release() drops the lease of every handle this process
 * holds. Both are no-ops for SCHEMA_REGISTRY_URL.
 */
export interface RegistryHandle extends ServiceHandle {
  /** Base URL without a trailing slash, e.g. "http://127.0.0.1:18081". The Confluent API is at `${url}/apis/ccompat/v7`. */
  url: string;
}

/** The Confluent-compatible API base of a registry URL. */
export function ccompatUrl(url: string): string {
  return `${url.replace(/\/+$/, '')}/apis/ccompat/v7`;
}

// ---------------------------------------------------------------------------
// public API

export async function ensureRegistry(opts: EnsureRegistryOptions = {}): Promise<RegistryHandle> {
  const external = process.env.SCHEMA_REGISTRY_URL?.trim();
  if (external) {
    return { url: external.replace(/\/+$/, ''), started: false, stop: async () => {}, release: async () => {} };
  }

  // WEIR_LOCAL_REGISTRY_PORT moves the local registry (and its management port, one above) off the default ports.
  const port = opts.port ?? (Number(process.env.WEIR_LOCAL_REGISTRY_PORT) || DEFAULT_PORT);
  const managementPort = opts.managementPort ?? port + 1;
  const url = `http://${HOST}:${port}`;
  const timeoutMs = opts.startTimeoutMs ?? 120_000;
  const database = opts.database ?? process.env.WEIR_LOCAL_REGISTRY_DATABASE ?? DEFAULT_DATABASE;
  const log = opts.log ?? (() => {});
  // under the lock, when no registry of ours is running (a running one is reused)
  const prepare = async (): Promise<LaunchSpec> => {
    for (const p of [port, managementPort]) {
      if (await portAnswers(HOST, p)) {
        throw new Error(
          `registry: port ${p} on ${HOST} is in use by a process this project did not start. ` +
            (p === port ? `Set SCHEMA_REGISTRY_URL=${url} to use it, or stop it.` : 'Stop it or pass another managementPort.'),
        );
      }
    }

    // distribution, Java, database
    const version = pomProperty(POM, 'apicurio.version', 'registry');
    await ensureDist(version, log);
    const java = findJava();
    const pg = pgSettings(database);
    await ensureDatabase(pg, log);

    log(`registry: starting Apicurio Registry ${version} (Java ${java.major}) at ${url} (log: ${rel(service.logFile)})`);
    const spec: StartSpec = { java: java.bin, heap: opts.heap ?? '384m', port, managementPort, pg };
    return {
      command: spec.java,
      args: registryArgs(spec),
      env: registryEnv(spec),
      notReady: (alive) =>
        alive
          ? `GET ${ccompatUrl(url)}/subjects did not answer within ${Math.round(timeoutMs / 1000)} s`
          : 'the registry exited during startup',
    };
  };

  const started = await service.ensure({ port, timeoutMs, log, prepare });
  return {
    url,
    started,
    stop: async () => {
      service.dropLease();
      await stopRegistry();
    },
    release: () => service.releaseLease(true),
  };
}

/** Stops the registry started by this project, if any. Resolves once no such process is left. */
export async function stopRegistry(): Promise<void> {
  await service.stop();
}

export interface RegistryStatus extends ServiceStatus {
  url: string;
  /** Running and started by `tsx infra/registry.ts start`: test runs leave it running. */
  pinned: boolean;
}

export async function registryStatus(port = Number(process.env.WEIR_LOCAL_REGISTRY_PORT) || DEFAULT_PORT): Promise<RegistryStatus> {
  const { address, ...status } = await service.status(port);
  return { ...status, url: address, pinned: status.running && !service.isAutostop() };
}

/** Stops the registry and drops its database (every schema and id). Keeps the distribution. */
export async function resetRegistry(database = DEFAULT_DATABASE): Promise<void> {
  await stopRegistry();
  const pg = pgSettings(database);
  // WITH (FORCE) (PostgreSQL 13+) also ends sessions a dead registry may have left behind.
  const res = await psql(pg, `DROP DATABASE IF EXISTS ${quoteIdent(database)} WITH (FORCE)`);
  if (res.code !== 0) throw new Error(`registry: dropping database ${database} failed:\n${res.output.trim()}`);
}

/**
 * Marks the running registry as not auto-stopped, so release() leaves it running
 * (used by `tsx infra/registry.ts start`).
 */
export function pinRegistry(): void {
  service.pin();
}

// ---------------------------------------------------------------------------
// distribution

function distComplete(version: string): boolean {
  try {
    const [hash, stampedVersion] = fs.readFileSync(DIST_STAMP, 'utf8').trim().split('\n');
    return hash === pomHash(POM) && stampedVersion === version && fs.existsSync(RUN_JAR);
  } catch {
    return false;
  }
}

async function ensureDist(version: string, log: (m: string) => void): Promise<void> {
  if (distComplete(version)) return;
  log(`registry: fetching Apicurio Registry ${version} (~160 MB) with Maven into ${rel(DIST)}`);
  const tmp = `${DIST}.tmp`;
  const markers = path.join(REGISTRY_HOME, 'maven');
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.rmSync(markers, { recursive: true, force: true });
  await service.mavenFetch(POM, 'dependency:unpack', tmp, 'the distribution');
  if (!fs.existsSync(path.join(tmp, 'quarkus-run.jar'))) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw new Error(`registry: mvn succeeded but the unpacked distribution has no quarkus-run.jar`);
  }
  fs.writeFileSync(path.join(tmp, path.basename(DIST_STAMP)), `${pomHash(POM)}\n${version}\n`);
  fs.rmSync(DIST, { recursive: true, force: true });
  fs.renameSync(tmp, DIST);
  fs.rmSync(markers, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------
// Java

interface JavaInstall {
  bin: string;
  major: number;
}

/** Major version of a JDK/JRE home, from its `release` file. */
function javaHomeMajor(home: string): number | undefined {
  try {
    const release = fs.readFileSync(path.join(home, 'release'), 'utf8');
    const m = /^JAVA_VERSION="(\d+)(?:\.(\d+))?/m.exec(release);
    if (!m) return undefined;
    const first = Number(m[1]);
    return first === 1 ? Number(m[2]) : first; // "1.8.0" -> 8
  } catch {
    return undefined;
  }
}

function javaInHome(home: string): JavaInstall | undefined {
  const bin = path.join(home, 'bin', 'java');
  const major = javaHomeMajor(home);
  return major !== undefined && fs.existsSync(bin) ? { bin, major } : undefined;
}

/** The first Java 21+ among REGISTRY_JAVA_HOME, JAVA_HOME, /usr/lib/jvm/* (newest first), PATH. */
function findJava(): JavaInstall {
  const seen: string[] = [];
  const consider = (home: string | undefined, label: string): JavaInstall | undefined => {
    if (!home) return undefined;
    const j = javaInHome(home);
    seen.push(`${label}: ${j ? `Java ${j.major}` : 'no JDK found'}`);
    return j && j.major >= MIN_JAVA ? j : undefined;
  };

  const explicit = process.env.REGISTRY_JAVA_HOME?.trim();
  if (explicit) {
    const j = consider(explicit, 'REGISTRY_JAVA_HOME');
    if (j) return j;
    throw new Error(`registry: REGISTRY_JAVA_HOME must point at a JDK ${MIN_JAVA}+ (${seen.join('; ')})`);
  }
  const fromJavaHome = consider(process.env.JAVA_HOME?.trim(), 'JAVA_HOME');
  if (fromJavaHome) return fromJavaHome;

  const jvmDir = '/usr/lib/jvm';
  let jvms: JavaInstall[] = [];
  try {
    jvms = fs
      .readdirSync(jvmDir)
      .map((d) => javaInHome(path.join(jvmDir, d)))
      .filter((j): j is JavaInstall => j !== undefined)
      .sort((a, b) => b.major - a.major);
  } catch {
    /* no such directory */
  }
  if (jvms[0]) seen.push(`${jvmDir}: newest Java ${jvms[0].major}`);
  if (jvms[0] && jvms[0].major >= MIN_JAVA) return jvms[0];

  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, 'java');
    try {
      const real = fs.realpathSync(candidate);
      const j = consider(path.dirname(path.dirname(real)), `PATH ${candidate}`);
      if (j) return j;
      break; // only the java the PATH would run
    } catch {
      /* not in this dir */
    }
  }
  throw new Error(
    `registry: Apicurio Registry needs Java ${MIN_JAVA}+ and none was found (${seen.join('; ') || 'no java at all'}). ` +
      `Install a JDK ${MIN_JAVA}+ and set REGISTRY_JAVA_HOME, or set SCHEMA_REGISTRY_URL to use an existing registry.`,
  );
}

// ---------------------------------------------------------------------------
// PostgreSQL

interface PgSettings {
  host: string;
  port: number;
  user: string;
  password?: string;
  database: string;
}

function pgSettings(database: string): PgSettings {
  return {
    host: process.env.PGHOST?.trim() || HOST,
    port: Number(process.env.PGPORT?.trim() || 5432),
    user: process.env.PGUSER?.trim() || 'postgres',
    password: process.env.PGPASSWORD || undefined,
    database,
  };
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Runs one statement with psql against the maintenance database `postgres`. */
function psql(pg: PgSettings, sql: string): Promise<{ code: number | null; output: string; error?: Error }> {
  return run(
    'psql',
    ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', pg.host, '-p', String(pg.port), '-U', pg.user, '-d', 'postgres', '-tAc', sql],
    REPO_ROOT,
    { ...process.env, PGCONNECT_TIMEOUT: '10', ...(pg.password ? { PGPASSWORD: pg.password } : {}) },
  );
}

/** Creates the registry's database if missing (psql; the `pg` package is not a dependency). */
async function ensureDatabase(pg: PgSettings, log: (m: string) => void): Promise<void> {
  const where = `${pg.user}@${pg.host}:${pg.port}`;
  const exists = await psql(pg, `SELECT 1 FROM pg_database WHERE datname = '${pg.database.replace(/'/g, "''")}'`);
  if (exists.error) {
    throw new Error(`registry: could not run psql (${exists.error.message}); install the PostgreSQL client or set SCHEMA_REGISTRY_URL`);
  }
  if (exists.code !== 0) {
    throw new Error(`registry: cannot reach PostgreSQL as ${where}:\n${exists.output.trim()}`);
  }
  if (exists.output.trim() === '1') return;
  log(`registry: creating database ${pg.database} on ${where}`);
  const created = await psql(pg, `CREATE DATABASE ${quoteIdent(pg.database)}`);
  // another process may have created it meanwhile
  if (created.code !== 0 && !/already exists/.test(created.output)) {
    throw new Error(`registry: creating database ${pg.database} on ${where} failed:\n${created.output.trim()}`);
  }
}

// ---------------------------------------------------------------------------
// the JVM

interface StartSpec {
  java: string;
  heap: string;
  port: number;
  managementPort: number;
  pg: PgSettings;
}

/**
 * Apicurio 3.x settings (names from the distribution's own application.properties):
 * apicurio.storage.kind / apicurio.storage.sql.kind select SQL storage on PostgreSQL,
 * apicurio.datasource.* feed quarkus.datasource.postgresql.*, apicurio.rules.global.<rule>
 * sets a default global rule. Passed as system properties; the password (if any) through the
 * environment (APICURIO_DATASOURCE_PASSWORD) so it does not show on the command line.
 */
function registryProperties(spec: StartSpec): Record<string, string> {
  const { pg } = spec;
  return {
    'quarkus.http.host': HOST,
    'quarkus.http.port': String(spec.port),
    'quarkus.management.host': HOST,
    'quarkus.management.port': String(spec.managementPort),

    'apicurio.storage.kind': 'sql',
    'apicurio.storage.sql.kind': 'postgresql',
    'apicurio.datasource.url': `jdbc:postgresql://${pg.host}:${pg.port}/${pg.database}`,
    'apicurio.datasource.username': pg.user,
    // the built-in pool keeps 20 connections open; a dev registry needs few
    'apicurio.datasource.jdbc.initial-size': '2',
    'apicurio.datasource.jdbc.min-size': '2',
    'apicurio.datasource.jdbc.max-size': '10',

    'apicurio.rules.global.compatibility': 'BACKWARD',

    // the shipped format has a broken date pattern ("YYYY-MMx-dd")
    'quarkus.log.console.format': '%d{yyyy-MM-dd HH:mm:ss,SSS} %-5p [%c{3.}] (%t) %s%e%n',
  };
}

/** The registry's JVM arguments; it runs with cwd = .local/registry. */
function registryArgs(spec: StartSpec): string[] {
  const props = Object.entries(registryProperties(spec)).map(([k, v]) => `-D${k}=${v}`);
  return [
    '-Xms64m',
    `-Xmx${spec.heap}`,
    // 2 cores shared with Kafka: few GC threads, C1 only (starts faster, plenty for a registry)
    '-XX:+UseSerialGC',
    '-XX:TieredStopAtLevel=1',
    '-XX:+ExitOnOutOfMemoryError',
    '-Djava.awt.headless=true',
    PROCESS_TAG,
    ...props,
    '-jar',
    path.relative(REGISTRY_HOME, RUN_JAR),
  ];
}

function registryEnv(spec: StartSpec): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // never let the parent's environment reconfigure the registry behind our back
  for (const k of Object.keys(env)) if (k.startsWith('APICURIO_') || k.startsWith('QUARKUS_')) delete env[k];
  if (spec.pg.password) env.APICURIO_DATASOURCE_PASSWORD = spec.pg.password;
  return env;
}

/** True once `GET /apis/ccompat/v7/subjects` answers 200 (storage is up by then). */
async function registryAnswers(url: string, timeoutMs: number): Promise<boolean> {
  try {
    const res = await fetch(`${ccompatUrl(url)}/subjects`, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// CLI: tsx infra/registry.ts start|stop|status|reset

service.runCli(import.meta.url, {
  async start(log) {
    const { started, url } = await ensureRegistry({ log });
    return { started, address: url, note: `Confluent API at ${ccompatUrl(url)}` };
  },
  reset: () => resetRegistry().then(() => `dropped database ${DEFAULT_DATABASE}`),
});
