/**
 * Which database each application's outputs land in: the sinks of the catalog, for `weir sink` (one application,
 * started by `weir deploy`) and for the main job (all three in one process) alike.
 * - Postgres: routing-decisions → routing_decisions, positions → positions, ledger-entries → ledger_entries,
 *   reconciliations → reconciliations (tables of sinks/postgres/migrations);
 * - Redis: positions and routing-decisions as hashes, and routing's live state (agent load, queue depth) from the
 *   changelogs of its `routing-agents` and `routing-stats` stores (JSON values; a tombstone deletes).
 * An application whose outputs go nowhere in a database gets no sink of that kind (payments has no Redis sink).
 */
import type { KafkaConfig } from 'kafkajs';
import type { RedisOptions } from 'ioredis';
import type { PoolConfig } from 'pg';
import { Serdes, type Serde } from '../runtime/serde.js';
import { changelogTopicName } from '../state/store-manager.js';
import { RoutingStores } from '../processors/routing/stores.js';
import type { ApplicationName, SerdeFor } from '../topologies/index.js';
import { applications } from '../topologies/index.js';
import { PostgresSink } from './postgres/postgres-sink.js';
import { postgresWriters, type PostgresTopicWriter } from './postgres/writers.js';
import { RedisSink } from './redis/redis-sink.js';
import { redisWriters, type RedisTopicWriter } from './redis/writers.js';
import { routingLiveStateWriters } from './redis/routing-live-state.js';
import { SinkRunner } from './sink-runner.js';

export type SinkKind = 'postgres' | 'redis';
export const SINK_KINDS: readonly SinkKind[] = ['postgres', 'redis'];

/** The table writer of each catalog output topic that lands in Postgres. */
export const POSTGRES_WRITERS: Record<string, () => PostgresTopicWriter> = {
  'routing-decisions': postgresWriters.routingDecisions,
  positions: postgresWriters.positions,
  'ledger-entries': postgresWriters.ledgerEntries,
  reconciliations: postgresWriters.reconciliations,
};

/** The key writer of each catalog output topic that lands in Redis (the live state's changelogs aside). */
export const REDIS_WRITERS: Record<string, () => RedisTopicWriter<any>> = {
  positions: redisWriters.positions,
  'routing-decisions': redisWriters.routingDecisions,
};

/** An application of the catalog under the id its workers run with (the id names its changelogs). */
export interface DeployedApplication {
  name: ApplicationName;
  applicationId: string;
}

/** One sink: its kind, its name (consumer group, offsets row or hash), the topics it reads. */
export interface SinkPlan {
  kind: SinkKind;
  name: string;
  /** catalog output topics, decoded with the application's (Avro) serdes */
  outputTopics: string[];
  /** store changelogs (JSON values) whose tombstones are deletes */
  changelogTopics: string[];
}

/** The routing store changelogs that feed Redis' live state. */
function routingLiveStateTopics(routingApplicationId: string): { agents: string; stats: string } {
  return {
    agents: changelogTopicName(routingApplicationId, RoutingStores.agents),
    stats: changelogTopicName(routingApplicationId, RoutingStores.stats),
  };
}

/**
 * The sinks of the given applications, one per kind that has anything to write, named `names[kind]`; kinds with
 * nothing to write are left out.
 */
export function sinkPlans(apps: readonly DeployedApplication[], names: Record<SinkKind, string>): SinkPlan[] {
  const outputs = apps.flatMap((a) => applications[a.name].outputs.map((c) => c.topic));
  const routing = apps.find((a) => a.name === 'routing');
  const live = routing ? routingLiveStateTopics(routing.applicationId) : undefined;
  const plans: SinkPlan[] = [
    { kind: 'postgres', name: names.postgres, outputTopics: outputs.filter((t) => t in POSTGRES_WRITERS), changelogTopics: [] },
    { kind: 'redis', name: names.redis, outputTopics: outputs.filter((t) => t in REDIS_WRITERS), changelogTopics: live ? [live.agents, live.stats] : [] },
  ];
  return plans.filter((p) => p.outputTopics.length + p.changelogTopics.length > 0);
}

/** The sinks of one deployed application, each named `<applicationId>-<kind>` (its group and its offsets' owner). */
export function applicationSinkPlans(app: DeployedApplication): SinkPlan[] {
  return sinkPlans([app], { postgres: `${app.applicationId}-postgres`, redis: `${app.applicationId}-redis` });
}

/** Where and how the sinks connect. */
export interface SinkConnections {
  brokers: string[];
  kafkaSecurity?: Pick<KafkaConfig, 'ssl' | 'sasl'>;
  pg: PoolConfig;
  /** Postgres schema of the tables */
  schema: string;
  redis: RedisOptions;
  /** prefix of every Redis key */
  redisPrefix: string;
  /** the Avro serdes of the catalog topics */
  serdeFor: SerdeFor;
  log: (level: 'debug' | 'info' | 'warn' | 'error', msg: string, extra?: object) => void;
}

/** A SinkRunner for a plan, with the runner's default settings (batch size, flush interval, session timeout). */
export function buildSinkRunner(plan: SinkPlan, c: SinkConnections): SinkRunner {
  const log = (msg: string) => c.log('warn', msg, { sink: plan.name });
  const topics: Record<string, Serde<unknown>> = {};
  for (const t of plan.outputTopics) topics[t] = c.serdeFor<unknown>(t);
  const json = Serdes.json<unknown>() as Serde<unknown>;
  for (const t of plan.changelogTopics) topics[t] = json;
  let sink: PostgresSink | RedisSink;
  if (plan.kind === 'postgres') {
    const writers = Object.fromEntries(plan.outputTopics.map((t) => [t, POSTGRES_WRITERS[t]!()]));
    sink = new PostgresSink({ name: plan.name, connection: c.pg, schema: c.schema, writers, log });
  } else {
    const writers: Record<string, RedisTopicWriter<any>> = Object.fromEntries(plan.outputTopics.map((t) => [t, REDIS_WRITERS[t]!()]));
    const [agents, stats] = plan.changelogTopics;
    if (agents) writers[agents] = routingLiveStateWriters.agentLoad();
    if (stats) writers[stats] = routingLiveStateWriters.queueDepth();
    sink = new RedisSink({ name: plan.name, prefix: c.redisPrefix, redis: c.redis, writers, log });
  }
  return new SinkRunner({
    brokers: c.brokers,
    ...c.kafkaSecurity,
    sink,
    topics,
    tombstoneTopics: plan.changelogTopics,
    log: (level, msg, extra) => c.log(level, msg, { sink: plan.name, ...extra }),
  });
}
