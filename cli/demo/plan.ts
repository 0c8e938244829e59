/**
 * What the main job deploys, by name: the three applications of the catalog with their application ids, topologies,
 * topics, changelogs and dead-letter topics; the sinks; and everything a reset at start wipes.
 * The names are fixed (catalog topics, application ids `weir-routing|trades|payments` behind WEIR_APP_PREFIX, which is
 * empty by default), so a second run finds the first one's topics, groups, tables and keys — and resets them.
 * The sinks are the main job's two combined ones (`weir-demo-postgres`, `weir-demo-redis`, all three applications in
 * each), or with `sinks: 'per-application'` those `weir deploy` starts (`<applicationId>-postgres|redis`, as the
 * chaos suite runs them: bench/chaos/).
 */
import path from 'node:path';
import { applications, type Application, type ApplicationName, type SerdeFor } from '../../topologies/index.js';
import type { Topology } from '../../runtime/topology.js';
import { changelogTopicName } from '../../state/store-manager.js';
import { RoutingStores } from '../../processors/routing/stores.js';
import { applicationSinkPlans, sinkPlans, type SinkPlan } from '../../sinks/applications.js';
import { TradesStores } from '../../topologies/trades.js';
import { PAYMENTS_STORES } from '../../topologies/payments.js';
import type { Settings } from '../settings.js';

export const APP_NAMES: readonly ApplicationName[] = ['routing', 'trades', 'payments'];

export interface DemoApp {
  name: ApplicationName;
  app: Application;
  applicationId: string;
  topology: Topology;
  inputTopics: string[];
  outputTopics: string[];
  /** `<applicationId>-<store>-changelog` of every logged store */
  changelogs: string[];
  deadLetterTopic: string;
  /** changelogs of the dedupe stores, whose `c:duplicates` key holds the exact duplicate count per partition */
  dedupeChangelogs: string[];
}

export interface DemoPlan {
  apps: Record<ApplicationName, DemoApp>;
  partitions: number;
  /** Postgres schema of the sink tables */
  schema: string;
  redisPrefix: string;
  /** the sinks: name (consumer group, owner of the stored offsets), kind, the topics each reads */
  sinks: SinkPlan[];
  stateDir: string;
  logFile: string;
  /** every topic the demo owns (deleted and recreated by the reset): inputs, outputs, changelogs, dead letters */
  allTopics: string[];
  /** every consumer group the demo owns: the applications' and the sinks' */
  allGroups: string[];
}

const DEDUPE_STORES: Record<ApplicationName, readonly string[]> = {
  routing: [RoutingStores.agentEventIds, RoutingStores.conversationEventIds],
  trades: [TradesStores.dedupe],
  payments: [PAYMENTS_STORES.paymentsDedupe, PAYMENTS_STORES.settlementsDedupe],
};

export interface PlanOptions {
  /** 'combined' (default): one Postgres and one Redis sink for all three; 'per-application': `weir deploy`'s */
  sinks?: 'combined' | 'per-application';
  /** Postgres schema of the sink tables; default `weir` */
  schema?: string;
}

export function planDemo(settings: Settings, serdeFor: (app: ApplicationName) => SerdeFor, redisPrefix: string, opts: PlanOptions = {}): DemoPlan {
  const partitions = settings.WEIR_PARTITIONS;
  const apps = {} as Record<ApplicationName, DemoApp>;
  for (const name of APP_NAMES) {
    const app = applications[name];
    const applicationId = `${settings.WEIR_APP_PREFIX}${app.applicationId}`;
    const topology = app.build(serdeFor(name), { partitions, backend: 'rocksdb' });
    const changelogs = [...topology.stores.values()].filter((s) => s.logged).map((s) => changelogTopicName(applicationId, s.name));
    apps[name] = {
      name,
      app,
      applicationId,
      topology,
      inputTopics: app.inputs.map((c) => c.topic),
      outputTopics: app.outputs.map((c) => c.topic),
      changelogs,
      deadLetterTopic: `${applicationId}-dead-letters`,
      dedupeChangelogs: DEDUPE_STORES[name].map((s) => changelogTopicName(applicationId, s)),
    };
  }
  const deployed = APP_NAMES.map((name) => ({ name, applicationId: apps[name].applicationId }));
  const sinks =
    opts.sinks === 'per-application'
      ? deployed.flatMap((a) => applicationSinkPlans(a))
      : sinkPlans(deployed, { postgres: `${settings.WEIR_APP_PREFIX}weir-demo-postgres`, redis: `${settings.WEIR_APP_PREFIX}weir-demo-redis` });
  return {
    apps,
    partitions,
    schema: opts.schema ?? 'weir',
    redisPrefix,
    sinks,
    stateDir: settings.WEIR_STATE_DIR,
    logFile: path.join(settings.WEIR_RUN_DIR, 'demo.log'),
    allTopics: APP_NAMES.flatMap((n) => [...apps[n].inputTopics, ...apps[n].outputTopics, ...apps[n].changelogs, apps[n].deadLetterTopic]),
    allGroups: [...APP_NAMES.map((n) => apps[n].applicationId), ...sinks.map((s) => s.name)],
  };
}
