/**
 * `weir worker <topology>` (hidden; `weir deploy` starts these): one worker process of a topology.
 * - a Worker with Avro serdes through the registry, its state under `<WEIR_STATE_DIR>/<instance>/`;
 * - Prometheus metrics and health on WEIR_HTTP_HOST:WEIR_HTTP_PORT (+ instance; 0 = any free port), whose /health
 *   details are what `weir status` shows: tasks and their states, restore progress per task and store;
 * - a run file `<WEIR_RUN_DIR>/<applicationId>/<pid>.json` ({pid, url, …}) written once the health server listens,
 *   removed on exit;
 * - SIGTERM/SIGINT: commit, leave the group, exit 0; with `--supervised`, the same when its deploy process is gone
 *   (so a killed deploy does not leave workers behind).
 * Logs are pino JSON lines on stdout (WEIR_LOG_LEVEL).
 */
import path from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { Worker } from '../../runtime/worker.js';
import { attachWorkerMetrics } from '../../runtime/metrics.js';
import { startHealthServer } from '../../runtime/health-server.js';
import { avroSerdesFor } from '../../topologies/index.js';
import { kafkaSecurity } from '../settings.js';
import { nonNegativeInt, note, settings, topologyArg } from '../common.js';
import { applicationIdOf, resolveServices } from '../services.js';
import { runDirOf, writeRunFile } from '../run-files.js';
import { stopWithParent } from '../deploy/parent-watch.js';

export interface WorkerFlags {
  instance?: string;
  appId?: string;
  supervised?: boolean;
  log?: string;
}

export interface WorkerDetails {
  applicationId: string;
  topology: string;
  instance: number;
  pid: number;
  startedAt: string;
  ready: boolean;
  tasks: Array<{ id: string; state: string }>;
  /** Per task and store: changelog records restored, and how far (next offset) of how much (end offset). */
  restore: Record<string, Record<string, { restored: number; next: number; end: number }>>;
  processed: number;
  deadLetters: number;
}

export async function workerCommand(topologyName: string, flags: WorkerFlags): Promise<void> {
  const app = topologyArg(topologyName);
  const instance = flags.instance === undefined ? 0 : nonNegativeInt('--instance', flags.instance);
  const s = settings();
  const applicationId = applicationIdOf(app, s, flags.appId);
  const logger = pino({ level: s.WEIR_LOG_LEVEL, base: { app: applicationId, instance, pid: process.pid } });
  const services = await resolveServices(s, note);
  const topology = app.build(avroSerdesFor(services.registry));

  const worker = new Worker({
    applicationId,
    topology,
    brokers: services.brokers,
    stateDir: path.resolve(s.WEIR_STATE_DIR, String(instance)),
    guarantee: s.WEIR_GUARANTEE,
    commitIntervalMs: s.WEIR_COMMIT_INTERVAL_MS,
    connectTimeoutMs: s.WEIR_CONNECT_TIMEOUT_MS,
    clientId: `weir-${applicationId}-${process.pid}`,
    ...kafkaSecurity(s),
    logger,
  });

  const startedAt = new Date().toISOString();
  const restore: WorkerDetails['restore'] = {};
  let processed = 0;
  let deadLetters = 0;
  worker.on('task.restore', (i) => {
    (restore[i.taskId] ??= {})[i.store] = { restored: i.restored, next: i.next, end: i.end };
  });
  worker.on('processed', (i) => void (processed += i.records));
  worker.on('dead-letter', () => void deadLetters++);
  worker.on('ready', () => logger.info({ tasks: worker.tasks.map((t) => t.id) }, 'ready'));

  const registry = new Registry();
  attachWorkerMetrics(worker, registry, applicationId);
  const details = (): WorkerDetails => ({
    applicationId,
    topology: app.name,
    instance,
    pid: process.pid,
    startedAt,
    ready: worker.ready,
    tasks: [...worker.tasks],
    restore,
    processed,
    deadLetters,
  });
  const server = await startHealthServer({
    registry,
    host: s.WEIR_HTTP_HOST,
    port: s.WEIR_HTTP_PORT === 0 ? 0 : s.WEIR_HTTP_PORT + instance,
    source: { live: () => true, ready: () => worker.ready, details },
  });
  writeRunFile(runDirOf(s.WEIR_RUN_DIR, applicationId), {
    pid: process.pid,
    url: server.url,
    role: 'worker',
    topology: app.name,
    applicationId,
    instance,
    startedAt,
    ...(flags.log ? { log: flags.log } : {}),
  });
  logger.info({ url: server.url }, 'health server listening');

  worker.installSignalHandlers();
  if (flags.supervised) stopWithParent(() => logger.warn('the deploy process is gone; stopping'));
  worker.done.catch((err: unknown) => {
    logger.error({ err }, 'worker stopped on a fatal error');
    note(`worker ${process.pid} stopped: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
  await worker.start();
  // Keep the process alive on its timers, consumer and server; exit comes from a signal or a fatal error.
}
