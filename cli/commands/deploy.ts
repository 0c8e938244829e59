/**
 * `weir deploy <topology>`: from nothing to a running topology on this machine.
 * 1. validate the topology (build it with the registry's Avro serdes);
 * 2. create or check its input and output topics (WEIR_PARTITIONS, co-partitioned inputs equal, `positions`
 *    compacted); changelog and dead-letter topics are created by the workers;
 * 3. register its schemas through the compatibility gate;
 * 4. start N worker processes (`weir worker`) and its sink processes (`weir sink`, one per database its outputs
 *    land in; cli/deploy/members.ts), and wait until each reports ready on /health/readiness; print one line;
 * 5. stay in the foreground: report a member that dies (the other workers take over a dead worker's tasks; when no
 *    worker is left the sinks are stopped too and the deploy exits 1); on Ctrl-C or SIGTERM stop them all (workers
 *    commit and leave the group, sinks flush and leave theirs) and exit 0. With `--detach` return once ready and leave
 *    them running (`weir stop` ends them).
 */
import { avroSerdesFor } from '../../topologies/index.js';
import { subjectOf } from '../../schemas/catalog.js';
import { registerSchemas } from '../../schemas/registration.js';
import { ConfigError } from '../../runtime/errors.js';
import { note, out, positiveInt, positiveNumber, seconds, settings, topologyArg } from '../common.js';
import { applicationIdOf, resolveServices } from '../services.js';
import { ensureTopics } from '../topics.js';
import { liveDeployPid, liveRunFiles, runDirOf, writeDeployFile } from '../run-files.js';
import { membersOf } from '../deploy/members.js';
import { DeployFailedError, Supervisor } from '../deploy/supervisor.js';

export interface DeployFlags {
  instances?: string;
  detach?: boolean;
  readyTimeout?: string;
  appId?: string;
}

/** How long members get to stop after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 30_000;

export async function deployCommand(topologyName: string, flags: DeployFlags): Promise<void> {
  const app = topologyArg(topologyName);
  const instances = flags.instances === undefined ? 1 : positiveInt('--instances', flags.instances);
  const readyTimeoutMs = 1000 * (flags.readyTimeout === undefined ? 180 : positiveNumber('--ready-timeout', flags.readyTimeout));
  const s = settings();
  const applicationId = applicationIdOf(app, s, flags.appId);
  const runDir = runDirOf(s.WEIR_RUN_DIR, applicationId);
  const pids = [liveDeployPid(runDir), ...liveRunFiles(runDir).map((r) => r.pid)].filter((p): p is number => p !== undefined);
  if (pids.length > 0) {
    throw new ConfigError(
      `${app.name} (${applicationId}) already runs here: pid ${[...new Set(pids)].join(', ')}; stop it first (weir stop ${app.name}, or Ctrl-C its deploy)`,
    );
  }
  const services = await resolveServices(s, note);

  // 1. The topology must build: unknown stores, cycles and co-partitioning are refused before anything runs.
  const topology = app.build(avroSerdesFor(services.registry));

  // 2. Topics.
  const admin = await services.admin();
  try {
    const report = await ensureTopics(admin, [...app.inputs, ...app.outputs], {
      partitions: s.WEIR_PARTITIONS,
      coPartitioned: topology.subTopologies.map((sub) => sub.sourceTopics),
    });
    for (const c of report.created) note(`created topic ${c}`);
    for (const n of report.notes) note(n);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }

  // 3. Schemas.
  const registered = await registerSchemas(
    services.registry,
    [...app.inputs, ...app.outputs].map((c) => ({ subject: subjectOf(c.topic), schema: c.valueSchema })),
  );
  const fresh = registered.filter((r) => r.new);
  if (fresh.length > 0) note(`registered ${fresh.map((r) => `${r.subject} (version ${r.version})`).join(', ')}`);

  // 4. Members.
  const supervisor = new Supervisor({ runDir, env: services.childEnv(), detach: flags.detach === true, report: note });
  const started = Date.now();
  // Ctrl-C while waiting: stop what started, and say so.
  let interrupt!: () => void;
  const interrupted = new Promise<never>((_, reject) => {
    interrupt = () => reject(new DeployFailedError(`${app.name} was stopped before it was ready`));
  });
  interrupted.catch(() => undefined);
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  const members = membersOf(app, applicationId, { instances });
  for (const spec of members) supervisor.start(spec);
  note(`started ${members.map((m) => m.label).join(', ')} of ${app.name} (application ${applicationId}); waiting until ready…`);
  try {
    await Promise.race([supervisor.waitReady(readyTimeoutMs), interrupted]);
  } catch (err) {
    await supervisor.stop(STOP_GRACE_MS);
    throw err;
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  }
  const urls = supervisor.members.map((m) => m.run!.url).join(', ');
  const what = describeMembers(members.map((m) => m.role));

  if (flags.detach) {
    for (const m of supervisor.members) m.child.unref();
    out(`${app.name} is running: ${what} ready in ${seconds(Date.now() - started)} (application ${applicationId}; ${urls}); detached: weir status ${app.name}, weir stop ${app.name}`);
    return;
  }
  out(`${app.name} is running: ${what} ready in ${seconds(Date.now() - started)} (application ${applicationId}; ${urls}); Ctrl-C stops it`);
  writeDeployFile(runDir);

  // 5. Supervise until a signal, or until no member is left.
  const code = await new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      note(`${signal}: stopping ${supervisor.alive.length} ${supervisor.alive.length === 1 ? 'process' : 'processes'} of ${app.name}…`);
      const t = Date.now();
      void supervisor.stop(STOP_GRACE_MS).then((clean) => {
        if (clean) {
          note(`${app.name} stopped in ${seconds(Date.now() - t)}`);
          resolve(0);
        } else {
          note(`${app.name} stopped, but not cleanly: ${supervisor.members.filter((m) => m.exitDescription !== 'code 0').map((m) => `${m.spec.label} exited with ${m.exitDescription}`).join(', ')}`);
          resolve(1);
        }
      });
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    supervisor.watch((m) => {
      note(`${m.spec.label} (pid ${m.pid}) exited unexpectedly with ${m.exitDescription}${supervisor.reason(m)}`);
      const alive = supervisor.alive;
      const workers = alive.filter((x) => x.spec.role === 'worker').length;
      if (alive.length === 0) {
        note(`no process of ${app.name} is left; exiting`);
        resolve(1);
      } else if (workers === 0) {
        note(`no worker of ${app.name} is left; stopping its sinks and exiting`);
        void supervisor.stop(STOP_GRACE_MS).then(() => resolve(1));
      } else if (m.spec.role === 'worker') {
        note(`${workers} of ${instances} workers still running; they take over its tasks`);
      } else {
        note(`the outputs it lands stay in Kafka until it runs again (weir stop ${app.name}, then weir deploy ${app.name})`);
      }
    });
  });
  process.exitCode = code;
}

/** "2 workers and 2 sinks", "1 worker". */
function describeMembers(roles: readonly string[]): string {
  const count = (role: string) => roles.filter((r) => r === role).length;
  const part = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;
  const sinks = count('sink');
  return sinks === 0 ? part(count('worker'), 'worker') : `${part(count('worker'), 'worker')} and ${part(sinks, 'sink')}`;
}
