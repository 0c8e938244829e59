import type { Topology } from '../runtime/topology.js';
import type { Serde } from '../runtime/serde.js';
import { ConfigError } from '../runtime/errors.js';
import { topicContracts, type TopicContract } from '../schemas/catalog.js';
import { avroSerde } from '../schemas/avro-serde.js';
import type { SchemaRegistryClient } from '../schemas/registry-client.js';
import { routingTopology } from './routing.js';
import { tradesTopology } from './trades.js';
import { paymentsTopology } from './payments.js';

export type ApplicationName = 'routing' | 'trades' | 'payments';

/** A value serde for each topic of an application. */
export type SerdeFor = <T>(topic: string) => Serde<T>;

export interface BuildOptions {
  backend?: 'rocksdb' | 'memory';
  /** Partition count the inputs must have (checked against the broker at start). */
  partitions?: number;
}

/**
 * One of the three applications, as the CLI and the main job see it: its name, the application id its workers
 * share (consumer group, transactional ids, changelogs), its topics from the schema catalog, and its topology.
 */
export interface Application {
  name: ApplicationName;
  applicationId: string;
  inputs: readonly TopicContract[];
  outputs: readonly TopicContract[];
  build(serdeFor: SerdeFor, opts?: BuildOptions): Topology;
}

function contracts(app: ApplicationName, role: 'input' | 'output'): TopicContract[] {
  return topicContracts.filter((c) => c.application === app && c.role === role);
}

export const applications: Readonly<Record<ApplicationName, Application>> = {
  routing: {
    name: 'routing',
    applicationId: 'weir-routing',
    inputs: contracts('routing', 'input'),
    outputs: contracts('routing', 'output'),
    build: (serdeFor, opts = {}) =>
      routingTopology({
        ...opts,
        serdes: {
          agentEvents: serdeFor('agent-events'),
          conversationEvents: serdeFor('conversation-events'),
          routingDecisions: serdeFor('routing-decisions'),
        },
      }),
  },
  trades: {
    name: 'trades',
    applicationId: 'weir-trades',
    inputs: contracts('trades', 'input'),
    outputs: contracts('trades', 'output'),
    build: (serdeFor, opts = {}) =>
      tradesTopology({
        ...opts,
        serdes: { trades: serdeFor('trades'), positions: serdeFor('positions'), ledgerEntries: serdeFor('ledger-entries') },
      }),
  },
  payments: {
    name: 'payments',
    applicationId: 'weir-payments',
    inputs: contracts('payments', 'input'),
    outputs: contracts('payments', 'output'),
    build: (serdeFor, opts = {}) =>
      paymentsTopology({
        ...opts,
        serdes: { payments: serdeFor('payments'), settlements: serdeFor('settlements'), reconciliations: serdeFor('reconciliations') },
      }),
  },
};

export function applicationOf(name: string): Application {
  const app = (applications as Record<string, Application | undefined>)[name];
  if (!app) throw new ConfigError(`unknown topology '${name}'; the topologies are ${Object.keys(applications).join(', ')}`);
  return app;
}

/** Avro serdes through the registry for every catalog topic (the reader schema is the catalog's). */
export function avroSerdesFor(client: SchemaRegistryClient): SerdeFor {
  const cache = new Map<string, Serde<unknown>>();
  return <T>(topic: string): Serde<T> => {
    let serde = cache.get(topic);
    if (!serde) {
      const contract = topicContracts.find((c) => c.topic === topic);
      if (!contract) throw new ConfigError(`topic '${topic}' has no contract in schemas/catalog.ts`);
      serde = avroSerde(client, contract.valueSchema as never);
      cache.set(topic, serde);
    }
    return serde as Serde<T>;
  };
}
