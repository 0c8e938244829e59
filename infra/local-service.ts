/**
 * What the project's local servers have in common: infra/kafka.ts (the Kafka broker) and
 * infra/registry.ts (the schema registry) each run one detached process that this project
 * fetches with Maven, starts, finds again, shares between processes and stops.
 *
 *   const service = new LocalService({ name: 'kafka', home: KAFKA_HOME, noun: 'broker', ... })
 *   const started = await service.ensure({ port, timeoutMs, log, prepare })
 *   service.runCli(import.meta.url, { start, reset })   // tsx infra/<name>.ts start|stop|status|reset
 *
 * - Files under the service's home (.local/<name>/): <noun>.pid, <noun>.log (the previous
 *   run's as <noun>.log.prev), <noun>.autostop, leases/<pid>, and the lock directory .lock/.
 * - Nothing here knows Kafka or Apicurio: the service says how to recognise its process (a
 *   command-line predicate), how to tell that it answers (a probe), and what to start.
 * - Plus the helpers both need: running a command with captured output, probing a port,
 *   reading a version from a pom.
 *
 * Paths are resolved from this module's location, never from the cwd.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Local services listen on the loopback interface only. */
export const HOST = '127.0.0.1';

/** A path relative to the repository, for messages. */
export const rel = (p: string) => path.relative(REPO_ROOT, p) || '.';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// what every service's API has

/** Options every ensure<Service>() takes; the defaults are the service's. */
export interface ServiceOptions {
  /** How long to wait for the service to answer once started. */
  startTimeoutMs?: number;
  /** JVM max heap, e.g. '512m'. */
  heap?: string;
  /** Progress messages (fetching, preparing, starting). Default: silent. */
  log?: (msg: string) => void;
}

/** What ensure<Service>() returns, besides the service's address. */
export interface ServiceHandle {
  /** True if this call started the service's process. */
  started: boolean;
  /**
   * Stops the local process (SIGTERM, SIGKILL after ~20 s) and waits for it to exit, even if
   * other processes use it. No-op when the service came from the environment (KAFKA_BROKERS,
   * SCHEMA_REGISTRY_URL).
   */
  stop(): Promise<void>;
  /**
   * Drops this process's lease. Stops the process if it was auto-started by ensure<Service>()
   * (by this or another process) and no other live process holds a lease, so concurrent test
   * runs never stop it under each other and the last one out cleans up. One pinned with
   * `tsx infra/<service>.ts start` keeps running. No-op when it came from the environment.
   */
  release(): Promise<void>;
}

export interface ServiceStatus {
  running: boolean;
  pid?: number;
  answering: boolean;
}

// ---------------------------------------------------------------------------
// LocalService

export interface LocalServiceOptions {
  /** Prefix of every message ("kafka: ..."). */
  name: string;
  /** What the process is called, in messages ("reusing running broker pid 123") and file names (broker.pid). */
  noun: string;
  /** How its pid is named in messages: 'broker pid' ("broker pid 123 ready in 3.1 s"). */
  pidLabel: string;
  /** Directory holding everything the service writes, e.g. .local/kafka. */
  home: string;
  /** True if a process with this command line (argv) is the service; its cwd must also be `home`. */
  isServiceCommand(argv: string[]): boolean;
  /** An error line of the service's log, for the digest in startup errors (exceptions are always included). */
  logErrorLine: RegExp;
  /** How long withLock() waits for another process's lock. */
  lockWaitMs: number;
  /** Port the service is reached on unless the caller picks another. */
  defaultPort: number;
  /** Its address on a port, for clients and messages: "127.0.0.1:19092", "http://127.0.0.1:18081". */
  address(port: number): string;
  /** True once the service at `address` answers; `timeoutMs` bounds one attempt. */
  answers(address: string, timeoutMs: number): Promise<boolean>;
  /** The environment variable that names an existing service instead (KAFKA_BROKERS). */
  externalEnv: string;
  /** What to do about a process of ours that does not answer: '"tsx infra/kafka.ts stop"'. */
  remedy: string;
}

export interface EnsureSpec {
  port: number;
  /** How long to wait for a started process to answer. */
  timeoutMs: number;
  log: (msg: string) => void;
  /**
   * Runs under the lock when no process of ours is running: checks that the ports are free,
   * fetches, configures, logs that it is starting; returns what to launch.
   */
  prepare(): Promise<LaunchSpec>;
}

export interface LaunchSpec {
  command: string;
  args: string[];
  /** Environment of the process. Default: this process's. */
  env?: NodeJS.ProcessEnv;
  /** Added in parentheses to "could not start <command>". */
  hint?: string;
  /** Why startup failed, before ". See <log>": alive = still running but not answering, else it exited. */
  notReady(alive: boolean): string;
}

/** What `tsx infra/<name>.ts start|reset` do besides what runCli() does itself. */
export interface ServiceCommands {
  /** Starts or reuses the service (ensure<Service>()); runCli() then pins it. `note` is printed after the address. */
  start(log: (msg: string) => void): Promise<{ started: boolean; address: string; note?: string }>;
  /** Stops the service and deletes its data; returns what went, printed after "stopped and ". */
  reset(): Promise<string>;
}

type Probe = (timeoutMs: number) => Promise<boolean>;

/**
 * One local server process of this project, e.g. the Kafka broker. Responsible for:
 * - the cross-process lock (<home>/.lock) that starting, stopping and lease changes run under;
 * - reusing our running process, or starting one detached (output to the log file) and
 *   waiting until it answers; finding it (pid file, else a /proc scan) and stopping it;
 * - leases (<home>/leases/<pid>) and the autostop marker: an auto-started process is stopped
 *   when the last live lease holder releases it; a pinned one keeps running;
 * - fetching what it runs with Maven;
 * - the command line `tsx infra/<name>.ts start|stop|status|reset`.
 * What to start, and how to tell that it answers, is the service's.
 */
export class LocalService {
  readonly home: string;
  readonly logFile: string;
  private readonly pidFile: string;
  /** Present while the running process was auto-started (tests); absent when pinned by the CLI. */
  private readonly autostopFile: string;
  private readonly lockDir: string;
  private readonly leasesDir: string;
  /** Handles of this process that have not been released; the lease file is per process. */
  private leaseCount = 0;

  constructor(private readonly opts: LocalServiceOptions) {
    this.home = opts.home;
    this.pidFile = path.join(opts.home, `${opts.noun}.pid`);
    this.logFile = path.join(opts.home, `${opts.noun}.log`);
    this.autostopFile = path.join(opts.home, `${opts.noun}.autostop`);
    this.lockDir = path.join(opts.home, '.lock');
    this.leasesDir = path.join(opts.home, 'leases');
  }

  // -------------------------------------------------------------------------
  // start, stop, status

  /**
   * Under the lock: reuses the process of ours that is running (it must answer within
   * min(timeoutMs, 30 s)), or else prepares and launches one; then takes this process's lease
   * on it. Returns true if this call started it (it is then marked auto-started).
   */
  async ensure(spec: EnsureSpec): Promise<boolean> {
    const address = this.opts.address(spec.port);
    const answers: Probe = (ms) => this.opts.answers(address, ms);
    return this.withLock(async () => {
      const started = !(await this.reuseRunning(address, answers, spec));
      if (started) await this.launch(await spec.prepare(), answers, spec);
      this.takeLease(started);
      return started;
    });
  }

  /** Stops the process started by this project, if any. Resolves once no such process is left. */
  async stop(): Promise<void> {
    await this.withLock(() => this.stopLocked());
  }

  /** stop() for a caller that holds the lock. */
  async stopLocked(): Promise<void> {
    const pids = new Set<number>();
    const fromFile = this.runningPid();
    if (fromFile !== undefined) pids.add(fromFile);
    for (const p of this.findProcesses()) pids.add(p);
    for (const p of pids) await this.stopPid(p);
    removeFile(this.pidFile);
    removeFile(this.autostopFile);
  }

  /** Our process (pid file, else /proc) and whether the service answers on `port`. */
  async status(port = this.opts.defaultPort): Promise<ServiceStatus & { address: string }> {
    const address = this.opts.address(port);
    const pid = this.runningPid() ?? this.findProcesses()[0];
    const answering = pid !== undefined && (await this.opts.answers(address, 3000));
    return { running: pid !== undefined, pid, answering, address };
  }

  /** Caller holds the lock. True if our running process answers; throws if it does not; else drops a stale pid file. */
  private async reuseRunning(address: string, answers: Probe, spec: EnsureSpec): Promise<boolean> {
    const { name, noun } = this.opts;
    const running = this.runningPid();
    if (running !== undefined) {
      if (await waitUntilAnswers(running, Math.min(spec.timeoutMs, 30_000), answers)) {
        spec.log(`${name}: reusing running ${noun} pid ${running} at ${address}`);
        return true;
      }
      throw new Error(
        `${name}: a ${noun} started by this project is running (pid ${running}) but does not answer on ${address}. ` +
          `See ${rel(this.logFile)}; ${this.opts.remedy} and retry.`,
      );
    }
    removeFile(this.pidFile);
    return false;
  }

  /**
   * Caller holds the lock. Starts the process, records its pid and waits until it answers.
   * If it does not, stops what is left of it and throws with a digest of the log.
   */
  private async launch(launch: LaunchSpec, answers: Probe, spec: EnsureSpec): Promise<void> {
    const { name, pidLabel } = this.opts;
    const t0 = Date.now();
    const pid = this.spawnDetached(launch);
    fs.writeFileSync(this.pidFile, `${pid}\n`);
    if (!(await waitUntilAnswers(pid, spec.timeoutMs, answers))) {
      const alive = isAlive(pid);
      if (alive) await this.stopPid(pid);
      removeFile(this.pidFile);
      throw new Error(`${name}: ${launch.notReady(alive)}. See ${rel(this.logFile)}:\n${this.logDigest()}`);
    }
    spec.log(`${name}: ${pidLabel} ${pid} ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }

  /** Starts the process detached with cwd = home and its output in the log file (the previous one kept as .prev). */
  private spawnDetached(launch: LaunchSpec): number {
    try {
      fs.renameSync(this.logFile, `${this.logFile}.prev`);
    } catch {
      /* no previous log */
    }
    const out = fs.openSync(this.logFile, 'a');
    try {
      const child = spawn(launch.command, launch.args, {
        cwd: this.home,
        detached: true,
        stdio: ['ignore', out, out],
        env: launch.env,
      });
      // spawn errors (e.g. no java) surface asynchronously; record them in the log.
      const what = path.basename(launch.command);
      child.on('error', (err) => fs.appendFileSync(this.logFile, `\n[weir infra] failed to start ${what}: ${err.message}\n`));
      child.unref();
      if (child.pid === undefined) {
        throw new Error(`${this.opts.name}: could not start ${launch.command}${launch.hint ? ` (${launch.hint})` : ''}`);
      }
      return child.pid;
    } finally {
      fs.closeSync(out);
    }
  }

  /** True if pid runs the service's command line with cwd = home (Linux /proc check). */
  private isOurs(pid: number): boolean {
    if (!isAlive(pid)) return false;
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (!this.opts.isServiceCommand(cmd)) return false;
      return fs.realpathSync(`/proc/${pid}/cwd`) === fs.realpathSync(this.home);
    } catch {
      return !fs.existsSync('/proc/self'); // no /proc: cannot tell, trust the pid file
    }
  }

  private runningPid(): number | undefined {
    let pid: number;
    try {
      pid = Number.parseInt(fs.readFileSync(this.pidFile, 'utf8').trim(), 10);
    } catch {
      return undefined;
    }
    return Number.isInteger(pid) && pid > 0 && this.isOurs(pid) ? pid : undefined;
  }

  /** Our processes even without a pid file (Linux only). */
  private findProcesses(): number[] {
    let entries: string[];
    try {
      entries = fs.readdirSync('/proc');
    } catch {
      return [];
    }
    return entries
      .filter((e) => /^\d+$/.test(e))
      .map(Number)
      .filter((p) => p !== process.pid && this.isOurs(p));
  }

  private async stopPid(pid: number, graceMs = 20_000): Promise<void> {
    const signal = (sig: NodeJS.Signals) => {
      try {
        process.kill(pid, sig);
      } catch {
        /* already gone */
      }
    };
    signal('SIGTERM');
    const deadline = Date.now() + graceMs;
    while (isAlive(pid) && Date.now() < deadline) await sleep(200);
    if (!isAlive(pid)) return;
    signal('SIGKILL');
    const killDeadline = Date.now() + 10_000;
    while (isAlive(pid) && Date.now() < killDeadline) await sleep(100);
    if (isAlive(pid)) throw new Error(`${this.opts.name}: ${this.opts.pidLabel} ${pid} did not exit after SIGKILL`);
  }

  /** The first ERROR/FATAL/exception lines of the log plus its last lines. */
  private logDigest(): string {
    let lines: string[];
    try {
      lines = fs.readFileSync(this.logFile, 'utf8').split('\n');
    } catch {
      return '(no log)';
    }
    const cut = (l: string) => (l.length > 400 ? `${l.slice(0, 400)}…` : l);
    const errors = lines
      .filter((l) => this.opts.logErrorLine.test(l) || /^Caused by: |^[\w.$]+(Exception|Error): /.test(l))
      .slice(0, 6)
      .map(cut);
    const last = lines.slice(-10).map(cut);
    return [...(errors.length ? ['first errors:', ...errors, '...'] : []), 'last lines:', ...last].join('\n');
  }

  // -------------------------------------------------------------------------
  // lock

  /** Cross-process mutex (mkdir is atomic); a lock whose owner died is taken over. Creates home. */
  async withLock<T>(fn: () => Promise<T>): Promise<T> {
    fs.mkdirSync(this.home, { recursive: true });
    const owner = path.join(this.lockDir, 'owner');
    const deadline = Date.now() + this.opts.lockWaitMs;
    for (;;) {
      try {
        fs.mkdirSync(this.lockDir);
        fs.writeFileSync(owner, `${process.pid}\n`);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        let holder = NaN;
        try {
          holder = Number.parseInt(fs.readFileSync(owner, 'utf8'), 10);
        } catch {
          /* being created or released */
        }
        const ageMs = (() => {
          try {
            return Date.now() - fs.statSync(this.lockDir).mtimeMs;
          } catch {
            return 0;
          }
        })();
        if ((Number.isInteger(holder) && !isAlive(holder)) || (Number.isNaN(holder) && ageMs > 5000)) {
          fs.rmSync(this.lockDir, { recursive: true, force: true });
          continue;
        }
        if (Date.now() > deadline) {
          throw new Error(`${this.opts.name}: timed out waiting for ${rel(this.lockDir)} (held by pid ${holder})`);
        }
        await sleep(250);
      }
    }
    try {
      return await fn();
    } finally {
      fs.rmSync(this.lockDir, { recursive: true, force: true });
    }
  }

  // -------------------------------------------------------------------------
  // leases and the autostop marker

  /**
   * Drops one handle's lease; `allHandles` drops every handle of this process at once. When
   * none is left, removes this process's lease file and, under the lock, stops an auto-started
   * process that no other live process holds a lease on.
   */
  async releaseLease(allHandles = false): Promise<void> {
    if (allHandles) this.leaseCount = 0;
    else if (--this.leaseCount > 0) return;
    await this.withLock(async () => {
      removeFile(this.leaseFile());
      if (fs.existsSync(this.autostopFile) && this.otherLeaseHolders().length === 0) await this.stopLocked();
    });
  }

  /** Removes this process's lease without stopping anything. */
  dropLease(): void {
    this.leaseCount = 0;
    removeFile(this.leaseFile());
  }

  /** Marks the running process as not auto-stopped: releasing leases leaves it running. */
  pin(): void {
    removeFile(this.autostopFile);
  }

  /** True while the marker says the running process was auto-started (not pinned). */
  isAutostop(): boolean {
    return fs.existsSync(this.autostopFile);
  }

  /** One more handle of this process uses the service; `started`: it was just started (auto-started). */
  private takeLease(started: boolean): void {
    if (started) fs.writeFileSync(this.autostopFile, `${process.pid}\n`);
    this.leaseCount++;
    fs.mkdirSync(this.leasesDir, { recursive: true });
    fs.writeFileSync(this.leaseFile(), `${new Date().toISOString()}\n`);
  }

  private leaseFile(pid = process.pid): string {
    return path.join(this.leasesDir, String(pid));
  }

  /** Pids of other live processes holding a lease; stale leases are removed. */
  otherLeaseHolders(): number[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.leasesDir);
    } catch {
      return [];
    }
    const live: number[] = [];
    for (const name of names) {
      const pid = Number(name);
      if (!Number.isInteger(pid) || pid === process.pid) continue;
      if (isAlive(pid)) live.push(pid);
      else removeFile(this.leaseFile(pid));
    }
    return live;
  }

  // -------------------------------------------------------------------------
  // Maven

  /**
   * Runs `mvn -q -B -f <pom> <goal> -DoutputDirectory=<outputDir>` from the repository root.
   * On failure removes outputDir and throws "<name>: fetching <what> failed: ..." with the
   * command (its output directory shown as `shownDir`) and the end of mvn's output.
   */
  async mavenFetch(pom: string, goal: string, outputDir: string, what: string, shownDir = outputDir): Promise<void> {
    const res = await run('mvn', ['-q', '-B', '-f', pom, goal, `-DoutputDirectory=${outputDir}`], REPO_ROOT);
    if (res.error || res.code !== 0) {
      fs.rmSync(outputDir, { recursive: true, force: true });
      const { name, noun, externalEnv } = this.opts;
      const why = res.error
        ? `could not run mvn (${res.error.message}); install Maven or set ${externalEnv} to use an existing ${noun}`
        : `mvn exited with ${res.code}`;
      throw new Error(
        `${name}: fetching ${what} failed: ${why}.\n` +
          `command: mvn -q -f ${rel(pom)} ${goal} -DoutputDirectory=${rel(shownDir)}\n${res.output.slice(-4000)}`,
      );
    }
  }

  // -------------------------------------------------------------------------
  // CLI

  /**
   * When `moduleUrl` (the service module's import.meta.url) is the script tsx runs: performs
   * argv's command, prints its result and exits (0; status: 1 not answering, 3 stopped;
   * 2 usage; 1 with the message on failure). Otherwise does nothing.
   */
  runCli(moduleUrl: string, commands: ServiceCommands): void {
    const script = fileURLToPath(moduleUrl);
    const entry = process.argv[1];
    let invokedDirectly = false;
    try {
      invokedDirectly = !!entry && fs.realpathSync(entry) === fs.realpathSync(script);
    } catch {
      /* not a file */
    }
    if (!invokedDirectly) return;
    this.cli(`tsx ${rel(script)}`, commands, process.argv.slice(2)).then(
      (code) => process.exit(code),
      (err: unknown) => {
        console.error(err instanceof Error ? err.message : err);
        process.exit(1);
      },
    );
  }

  private async cli(invocation: string, commands: ServiceCommands, argv: string[]): Promise<number> {
    const log = (m: string) => console.error(m);
    switch (argv[0]) {
      case 'start': {
        const { externalEnv, noun } = this.opts;
        if (process.env[externalEnv]) {
          console.log(`${externalEnv} is set (${process.env[externalEnv]}); not starting a local ${noun}.`);
          return 0;
        }
        const s = await commands.start(log);
        // started from the CLI, it stays up until `stop`; this process needs no lease
        this.pin();
        this.dropLease();
        console.log(`${s.address} (${s.started ? 'started' : 'already running'})${s.note ? `; ${s.note}` : ''}`);
        return 0;
      }
      case 'stop':
        await this.stop();
        console.log('stopped');
        return 0;
      case 'status': {
        const s = await this.status();
        if (!s.running) {
          console.log('stopped');
          return 3;
        }
        console.log(`running pid ${s.pid} at ${s.address} (${s.answering ? 'answering' : 'NOT answering'})`);
        return s.answering ? 0 : 1;
      }
      case 'reset':
        console.log(`stopped and ${await commands.reset()}`);
        return 0;
      default:
        console.error(`usage: ${invocation} start|stop|status|reset`);
        return 2;
    }
  }
}

/** Polls until the probe answers; false if the deadline passes or the process dies. */
async function waitUntilAnswers(pid: number, timeoutMs: number, answers: Probe): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return false;
    if (await answers(2000)) return true;
    await sleep(250);
  }
  return false;
}

// ---------------------------------------------------------------------------
// helpers

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // a zombie still "exists" for kill(0)
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true; // no /proc (macOS): trust kill(0)
  }
}

export function portAnswers(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

export interface RunResult {
  code: number | null;
  /** stdout and stderr, interleaved. */
  output: string;
  /** Set when the command could not be run at all (e.g. not installed). */
  error?: Error;
}

/** Runs a command to completion, capturing its output; never rejects. */
export function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<RunResult> {
  return new Promise((resolve) => {
    let output = '';
    let error: Error | undefined;
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', (e) => (error = e));
    child.on('close', (code) => resolve({ code, output, error }));
  });
}

export function removeFile(p: string): void {
  fs.rmSync(p, { force: true });
}

/** The value of <property> in a pom's <properties>; `name` prefixes the error if it is missing. */
export function pomProperty(pom: string, property: string, name: string): string {
  const tag = property.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`<${tag}>\\s*([^<\\s]+)\\s*</${tag}>`).exec(fs.readFileSync(pom, 'utf8'));
  if (!m?.[1]) throw new Error(`${name}: no <${property}> property in ${rel(pom)}`);
  return m[1];
}

/** sha256 of a pom, stamped next to what was fetched with it so a changed pom re-fetches. */
export function pomHash(pom: string): string {
  return createHash('sha256').update(fs.readFileSync(pom)).digest('hex');
}
