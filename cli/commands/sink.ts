/**
 * `weir sink <topology> --kind postgres|redis` (hidden; `weir deploy` starts these): one sink process of a topology,
 * landing its outputs in Postgres (DATABASE_URL, schema WEIR_PG_SCHEMA) or Redis (REDIS_URL, prefix WEIR_REDIS_PREFIX)
 * exactly once (sinks/applications.ts says which topics go where).
 * - the sink `<applicationId>-<kind>`: its consumer group, and its offsets row (Postgres) or hash (Redis);
 * - metrics (batch latency, rows, lag per partition, breaker state) and health on WEIR_HTTP_HOST:WEIR_HTTP_PORT (+ 100
 *   + instance; 0 = any free port): ready while the runner is running, the /health details are its status, which
 *   `weir status` shows;
 * - a run file with role 'sink' (cli/run-files.ts), removed on exit;
 * - SIGTERM/SIGINT: final flush, leave the group, exit 0; with `--supervised`, the same when its deploy is gone.
 * Logs are pino JSON lines on stdout (WEIR_LOG_LEVEL).
 */
import pino from 'pino';
import { Registry } from 'prom-client';
import { startHealthServer } from '../../runtime/health-server.js';
import { attachSinkMetrics } from '../../sinks/metrics.js';
import { applicationSinkPlans, buildSinkRunner, SINK_KINDS, type SinkKind } from '../../sinks/applications.js';
import { avroSerdesFor } from '../../topologies/index.js';
import { UsageError } from '../errors.js';
import { kafkaSecurity, pgConnection, redisOptions } from '../settings.js';
import { nonNegativeInt, note, settings, topologyArg } from '../common.js';
import { applicationIdOf, resolveServices } from '../services.js';
import { runDirOf, writeRunFile } from '../run-files.js';
import { stopWithParent } from '../deploy/parent-watch.js';

export interface SinkFlags {
  kind: string;
  instance?: string;
  appId?: string;
  supervised?: boolean;
  log?: string;
}

export async function sinkCommand(topologyName: string, flags: SinkFlags): Promise<void> {
  const app = topologyArg(topologyName);
  if (!SINK_KINDS.includes(flags.kind as SinkKind)) throw new UsageError(`--kind takes ${SINK_KINDS.join(' or ')}, not '${flags.kind}'`);
  const kind = flags.kind as SinkKind;
  const instance = flags.instance === undefined ? 0 : nonNegativeInt('--instance', flags.instance);
  const s = settings();
  const applicationId = applicationIdOf(app, s, flags.appId);
  const plan = applicationSinkPlans({ name: app.name, applicationId }).find((p) => p.kind === kind);
  if (!plan) throw new UsageError(`the ${app.name} topology writes nothing to ${kind}`);
  const name = plan.name;
  const logger = pino({ level: s.WEIR_LOG_LEVEL, base: { sink: name, pid: process.pid } });
  const services = await resolveServices(s, note);
  const runner = buildSinkRunner(plan, {
    brokers: services.brokers,
    kafkaSecurity: kafkaSecurity(s),
    pg: pgConnection(s.DATABASE_URL),
    schema: s.WEIR_PG_SCHEMA,
    redis: redisOptions(s.REDIS_URL),
    redisPrefix: s.WEIR_REDIS_PREFIX,
    serdeFor: avroSerdesFor(services.registry),
    log: (level, msg, extra) => logger[level](extra ?? {}, msg),
  });

  const registry = new Registry();
  attachSinkMetrics([runner], registry);
  const startedAt = new Date().toISOString();
  const server = await startHealthServer({
    registry,
    host: s.WEIR_HTTP_HOST,
    port: s.WEIR_HTTP_PORT === 0 ? 0 : s.WEIR_HTTP_PORT + 100 + instance,
    source: {
      live: () => true, // a sink that cannot go on exits (below); a stalled one is alive and waits for its database
      ready: () => runner.status().state === 'running',
      details: () => ({ topology: app.name, applicationId, kind, instance, pid: process.pid, startedAt, ...runner.status() }),
    },
  });
  writeRunFile(runDirOf(s.WEIR_RUN_DIR, applicationId), {
    pid: process.pid,
    url: server.url,
    role: 'sink',
    topology: app.name,
    applicationId,
    instance,
    startedAt,
    ...(flags.log ? { log: flags.log } : {}),
  });
  logger.info({ url: server.url, topics: [...plan.outputTopics, ...plan.changelogTopics] }, 'health server listening');

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping: final flush, leaving the group');
    void runner
      .stop()
      .then(() => server.close())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, 'stopping failed');
          process.exit(1);
        },
      );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  if (flags.supervised) stopWithParent(() => logger.warn('the deploy process is gone; stopping'));
  runner.on('error', (e) => {
    if (e.willRetry) return;
    // a poisoned record or a non-retriable write: the sink would stay behind for good; say so and stop
    logger.error({ err: e.error, stage: e.stage }, 'sink stopped on an error it cannot retry');
    note(`sink ${name} (pid ${process.pid}) stopped: ${e.error.message}`);
    process.exit(1);
  });
  await runner.start();
  // Stays up on its consumer, timers and server; exit comes from a signal or a fatal error.
}
