/**
 * The three applications and their sinks running in this process.
 * Responsible for:
 * - one Worker per application (RocksDB state under WEIR_STATE_DIR), started together;
 * - one health server on WEIR_HTTP_HOST:WEIR_HTTP_PORT (0: any free port) serving the metrics of all three workers
 *   merged into one exposition (they share metric names and differ by their `app` label), plus the sinks' progress;
 * - the sinks: Postgres (routing-decisions, positions, ledger-entries, reconciliations) and Redis (positions,
 *   routing-decisions, and the live agent load and queue depth from the routing stores' changelogs);
 * - stopping everything cleanly: workers commit and leave their group, sinks flush and leave theirs.
 */
import { AggregatorRegistry, Registry } from 'prom-client';
import type { Logger } from 'pino';
import { Worker } from '../../runtime/worker.js';
import { attachWorkerMetrics } from '../../runtime/metrics.js';
import { startHealthServer, type HealthServer } from '../../runtime/health-server.js';
import type { ApplicationName, SerdeFor } from '../../topologies/index.js';
import type { SinkRunner } from '../../sinks/sink-runner.js';
import { buildSinkRunner, type SinkConnections } from '../../sinks/applications.js';
import { attachSinkMetrics } from '../../sinks/metrics.js';
import { kafkaSecurity } from '../settings.js';
import type { DemoEnvironment } from './environment.js';
import { APP_NAMES, type DemoPlan } from './plan.js';

/** One exposition of several registries whose metrics share names (label sets differ): summed per label set. */
class MergedRegistry extends Registry {
  constructor(private readonly parts: Registry[]) {
    super();
  }

  override async metrics(): Promise<string> {
    const all = await Promise.all(this.parts.map((r) => r.getMetricsAsJSON()));
    return AggregatorRegistry.aggregate(all).metrics();
  }
}

export class DemoDeployment {
  readonly workers = new Map<ApplicationName, Worker>();
  readonly sinks: readonly SinkRunner[];
  health: HealthServer | null = null;
  /** the first fatal error of a worker or sink (the demo stops on it) */
  failure: Error | null = null;
  private readonly registries: Registry[] = [];
  private readonly detach: Array<() => void> = [];
  private readonly sinksStarted = new Set<SinkRunner>();
  private stopping: Promise<void> | null = null;

  constructor(
    private readonly env: DemoEnvironment,
    private readonly plan: DemoPlan,
    serdeFor: SerdeFor,
    private readonly logger: Logger,
    private readonly onFailure: (err: Error) => void,
  ) {
    const s = env.settings;
    for (const name of APP_NAMES) {
      const a = plan.apps[name];
      const worker = new Worker({
        applicationId: a.applicationId,
        topology: a.topology,
        brokers: env.brokers,
        stateDir: plan.stateDir,
        guarantee: s.WEIR_GUARANTEE,
        commitIntervalMs: s.WEIR_COMMIT_INTERVAL_MS,
        connectTimeoutMs: s.WEIR_CONNECT_TIMEOUT_MS,
        logger: logger.child({ app: a.applicationId }),
        ...kafkaSecurity(s),
      });
      const registry = new Registry();
      this.detach.push(attachWorkerMetrics(worker, registry, a.applicationId));
      this.registries.push(registry);
      worker.done.catch((err: unknown) => this.fail(new Error(`${a.applicationId} stopped: ${err instanceof Error ? err.message : String(err)}`)));
      this.workers.set(name, worker);
    }

    // the same sinks `weir deploy` starts per application (sinks/applications.ts), here for all three at once
    const connections: SinkConnections = {
      brokers: env.brokers,
      kafkaSecurity: kafkaSecurity(s),
      pg: env.pg,
      schema: plan.schema,
      redis: env.redis,
      redisPrefix: plan.redisPrefix,
      serdeFor,
      log: (level, msg, extra) => logger[level](extra ?? {}, msg),
    };
    this.sinks = plan.sinks.map((p) => buildSinkRunner(p, connections));
    for (const runner of this.sinks) {
      runner.on('error', (e) => {
        // a poisoned partition or a non-retriable write would keep the sink behind for good
        if (!e.willRetry) this.fail(new Error(`sink ${runner.name} stalled: ${e.error.message}`));
      });
    }
    const sinkRegistry = new Registry();
    this.detach.push(attachSinkMetrics(this.sinks, sinkRegistry));
    this.registries.push(sinkRegistry);
  }

  /** Start the workers (they create changelog and dead-letter topics), then the health server and the sinks. */
  async start(): Promise<void> {
    // all settled before anything is stopped: a worker stopped in the middle of its start could stay in its group
    const started = await Promise.allSettled([...this.workers.values()].map((w) => w.start()));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const s = this.env.settings;
    this.health = await startHealthServer({
      registry: new MergedRegistry(this.registries),
      host: s.WEIR_HTTP_HOST,
      port: s.WEIR_HTTP_PORT,
      source: {
        live: () => this.failure === null,
        ready: () => [...this.workers.values()].every((w) => w.ready) && this.sinks.every((r) => r.status().state === 'running'),
        details: () => ({
          workers: Object.fromEntries([...this.workers].map(([n, w]) => [n, { ready: w.ready, tasks: w.tasks }])),
          sinks: Object.fromEntries(this.sinks.map((r) => [r.name, { state: r.status().state, breaker: r.status().breaker }])),
        }),
      },
    });
    for (const runner of this.sinks) {
      this.sinksStarted.add(runner);
      await runner.start();
    }
  }

  get ready(): boolean {
    return [...this.workers.values()].every((w) => w.ready);
  }

  /** Workers commit and leave; sinks flush and leave; the health server closes. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.all([
        ...[...this.workers.values()].map((w) => w.stop().catch((err: Error) => this.logger.error({ err }, 'stopping a worker failed'))),
        ...[...this.sinksStarted].map((r) => r.stop().catch((err: Error) => this.logger.error({ err }, 'stopping a sink failed'))),
      ]);
      for (const d of this.detach) d();
      await this.health?.close();
    })();
    return this.stopping;
  }

  private fail(err: Error): void {
    if (this.stopping || this.failure) return;
    this.failure = err;
    this.logger.error({ err }, 'the demo stops');
    this.onFailure(err);
  }
}
