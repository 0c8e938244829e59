/**
 * Conversation routing ("agent match"): agent events and conversation events of a tenant meet in one
 * processor, which emits a routing decision per assigned conversation.
 *
 *   agent-events ─────── agent-dedupe (eventId) ────────┐
 *                                                       ├→ route → routing-decisions
 *   conversation-events ─ conversation-dedupe (eventId) ┘
 *
 * Both inputs are keyed by tenantId and co-partitioned (same partition count), so one task
 * holds a tenant's agents, conversations and queue. Invalid records go to the dead-letter topic through the
 * sources' `validate`.
 */
import { TopologyBuilder, type Topology } from '../runtime/topology.js';
import { Serdes, type Serde } from '../runtime/serde.js';
import type { Record } from '../runtime/processor.js';
import { contractOf } from '../schemas/catalog.js';
import type { AgentEvent, ConversationEvent, RoutingDecision } from '../schemas/types.js';
import { DedupeProcessor, type DedupeOptions } from '../processors/dedupe.js';
import { RoutingProcessor } from '../processors/routing/routing-processor.js';
import { RoutingStores, routingDedupeStoreSpecs, routingStoreSpecs } from '../processors/routing/stores.js';
import { validateAgentEvent, validateConversationEvent } from '../processors/routing/validate.js';

/** The value serde of each topic (keys are plain UTF-8 tenant ids). */
export interface RoutingSerdes {
  agentEvents: Serde<AgentEvent>;
  conversationEvents: Serde<ConversationEvent>;
  routingDecisions: Serde<RoutingDecision>;
}

export interface RoutingTopologyOptions {
  serdes: RoutingSerdes;
  /** Store backend: 'rocksdb' (default) or 'memory'. */
  backend?: 'rocksdb' | 'memory';
  /** Partition count both input topics must have (they are co-partitioned). */
  partitions?: number;
  /** How long (event time) an eventId is remembered for dedupe; default 24 h. */
  dedupeRetentionMs?: number;
  /** How long (event time) an ended conversation id is remembered, so it is never routed again; default 24 h. */
  endedRetentionMs?: number;
}

export const RoutingTopics = {
  agentEvents: contractOf('agent-events').topic,
  conversationEvents: contractOf('conversation-events').topic,
  routingDecisions: contractOf('routing-decisions').topic,
} as const;

type RoutingInput = AgentEvent | ConversationEvent;

const DAY_MS = 24 * 60 * 60 * 1000;
const CLEANUP_INTERVAL_MS = 60_000;

function dedupeOptions(storeName: string, retentionMs: number): DedupeOptions<string, RoutingInput> {
  return { storeName, idOf: (r: Record<string, RoutingInput>) => r.value.eventId, retentionMs, cleanupIntervalMs: CLEANUP_INTERVAL_MS };
}

export function routingTopology(opts: RoutingTopologyOptions): Topology {
  const { serdes } = opts;
  const backend = opts.backend ?? 'rocksdb';
  const dedupeRetentionMs = opts.dedupeRetentionMs ?? DAY_MS;
  const endedRetentionMs = opts.endedRetentionMs ?? DAY_MS;
  const key = Serdes.string();

  const builder = new TopologyBuilder()
    .addSource<string, AgentEvent>('agent-events-source', {
      topics: [RoutingTopics.agentEvents],
      keySerde: key,
      valueSerde: serdes.agentEvents,
      partitions: opts.partitions,
      validate: validateAgentEvent,
    })
    .addSource<string, ConversationEvent>('conversation-events-source', {
      topics: [RoutingTopics.conversationEvents],
      keySerde: key,
      valueSerde: serdes.conversationEvents,
      partitions: opts.partitions,
      validate: validateConversationEvent,
    })
    .addProcessor('agent-dedupe', () => new DedupeProcessor(dedupeOptions(RoutingStores.agentEventIds, dedupeRetentionMs)), 'agent-events-source')
    .addProcessor(
      'conversation-dedupe',
      () => new DedupeProcessor(dedupeOptions(RoutingStores.conversationEventIds, dedupeRetentionMs)),
      'conversation-events-source',
    )
    .addProcessor<string, RoutingInput, string, RoutingDecision>(
      'route',
      () =>
        new RoutingProcessor({
          agentTopic: RoutingTopics.agentEvents,
          conversationTopic: RoutingTopics.conversationEvents,
          endedRetentionMs,
          cleanupIntervalMs: CLEANUP_INTERVAL_MS,
        }),
      'agent-dedupe',
      'conversation-dedupe',
    )
    .addSink<string, RoutingDecision>(
      'routing-decisions-sink',
      { topic: RoutingTopics.routingDecisions, keySerde: key, valueSerde: serdes.routingDecisions },
      'route',
    );

  const [agentIds, conversationIds] = routingDedupeStoreSpecs(backend);
  builder.addStateStore(agentIds!, 'agent-dedupe').addStateStore(conversationIds!, 'conversation-dedupe');
  for (const spec of routingStoreSpecs(backend)) builder.addStateStore(spec, 'route');
  return builder.build();
}
