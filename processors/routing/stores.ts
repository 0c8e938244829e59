/**
 * The routing state stores: names, key layout, value shapes, and readers for what the sinks need.
 *
 * Every key of the tenant-scoped stores starts with `<tenantId>` U+0000, so a prefix scan loads one tenant's
 * state and nothing else (validation forbids U+0000 inside ids and skills). Keys are UTF-8 strings, values JSON.
 *
 * | store                   | key                                                        | value                                  |
 * |-------------------------|------------------------------------------------------------|----------------------------------------|
 * | routing-agents          | `<tenant>␀<agentId>`                                      | AgentState: status, skills, maxConcurrent, live load, lastAssignedAt |
 * | routing-conversations   | `<tenant>␀<conversationId>`                               | ConversationState: WAITING, ACTIVE (with its agent) or ENDED |
 * | routing-queue           | `<tenant>␀<skill>␀<8 hex: 2147483647 − priority><16 hex: requestedAt>␀<conversationId>` | WaitingConversation |
 * | routing-stats           | `<tenant>␀skill␀<skill>`                                  | SkillGauges: { waiting, active }        |
 * |                         | `<tenant>␀count␀<name>`                                   | number (ignored events, see RoutingCounter) |
 * | routing-ended-expiry    | `<16 hex: endedAt>␀<tenant>␀<conversationId>`             | endedAt; forgets ENDED tombstones after the retention |
 * |                         | `stream-time` (sorts after every hex key)                  | the processor's stream time (StoredStreamTime) |
 * | routing-agent-event-ids, routing-conversation-event-ids | see processors/dedupe.ts  | dedupe of eventIds, duplicate counts |
 *
 * (␀ is U+0000.) The queue key sorts, within one (tenant, skill), in serving order: priority high to low, then
 * request time, then conversationId in code point order — a prefix scan's first entry is the head.
 *
 * For the Redis sink (it can read these stores' changelog topics, `<applicationId>-<store>-changelog`, which carry
 * the same keys and JSON values):
 * - live agent load: `routing-agents`, key `<tenant>␀<agentId>`, field `load` (with `maxConcurrent` and `status`);
 * - queue depth per tenant and skill: `routing-stats`, key `<tenant>␀skill␀<skill>`, field `waiting`
 *   (and `active`: conversations of that skill currently assigned).
 */
import { keyValueStore, type KeyValueStore, type StoreSpec } from '../../state/store.js';
import { Serdes } from '../../runtime/serde.js';
import { dedupeStore } from '../dedupe.js';
import type { AgentState, WaitingConversation } from './policy.js';

export const RoutingStores = {
  agents: 'routing-agents',
  conversations: 'routing-conversations',
  queue: 'routing-queue',
  stats: 'routing-stats',
  endedExpiry: 'routing-ended-expiry',
  agentEventIds: 'routing-agent-event-ids',
  conversationEventIds: 'routing-conversation-event-ids',
} as const;

const SEP = '\u0000';

export type ConversationState =
  | { state: 'WAITING'; skill: string; priority: number; requestedAt: number }
  | { state: 'ACTIVE'; skill: string; priority: number; requestedAt: number; agentId: string; assignedAt: number }
  /** Remembered for the ended-retention window, so a late or repeated REQUESTED cannot be routed again. */
  | { state: 'ENDED'; endedAt: number };

export interface SkillGauges {
  /** Conversations of this skill waiting in the tenant's queue (queue depth). */
  waiting: number;
  /** Conversations of this skill assigned and not yet ended. */
  active: number;
}

/**
 * Events that changed nothing, counted per tenant (duplicates by eventId are counted by the dedupe stores):
 * - requestRepeated: REQUESTED for a conversation already waiting or assigned (a different eventId);
 * - requestAfterEnd: REQUESTED for a conversation that ended (or whose ENDED came first) within the retention;
 * - endedUnknown: ENDED for a conversation routing does not know (never requested, or already ended);
 * - statusWhileLoggedOut: STATUS for an agent without a session;
 * - logoutWhileLoggedOut: LOGOUT for an agent without a session.
 */
export type RoutingCounter = 'requestRepeated' | 'requestAfterEnd' | 'endedUnknown' | 'statusWhileLoggedOut' | 'logoutWhileLoggedOut';

export function tenantPrefix(tenantId: string): string {
  return `${tenantId}${SEP}`;
}

export function agentKey(tenantId: string, agentId: string): string {
  return `${tenantId}${SEP}${agentId}`;
}

export function conversationKey(tenantId: string, conversationId: string): string {
  return `${tenantId}${SEP}${conversationId}`;
}

export function skillQueuePrefix(tenantId: string, skill: string): string {
  return `${tenantId}${SEP}${skill}${SEP}`;
}

export function queueKey(tenantId: string, w: WaitingConversation): string {
  // Higher priority first: store the distance from the int32 maximum, in [0, 2^32 - 1].
  const inverted = (2147483647 - w.priority).toString(16).padStart(8, '0');
  return `${skillQueuePrefix(tenantId, w.skill)}${inverted}${hex16(w.requestedAt)}${SEP}${w.conversationId}`;
}

export function skillGaugeKey(tenantId: string, skill: string): string {
  return `${tenantId}${SEP}skill${SEP}${skill}`;
}

export function counterKey(tenantId: string, name: RoutingCounter): string {
  return `${tenantId}${SEP}count${SEP}${name}`;
}

/** The key of the routing processor's own stream time in `routing-ended-expiry`; no expiry key reaches it in a scan. */
export const STREAM_TIME_KEY = 'stream-time';

export function endedExpiryKey(endedAt: number, tenantId: string, conversationId: string): string {
  return `${hex16(endedAt)}${SEP}${tenantId}${SEP}${conversationId}`;
}

/** The largest expiry key with endedAt <= `time`, as an inclusive upper bound for a range scan. */
export function endedExpiryUpperBound(time: number): string {
  return `${hex16(time)}\u0001`;
}

/** The tenant and conversation of an expiry key. */
export function parseEndedExpiryKey(key: string): { tenantId: string; conversationId: string } {
  const [, tenantId = '', conversationId = ''] = key.split(SEP);
  return { tenantId, conversationId };
}

function hex16(t: number): string {
  return Math.max(0, t).toString(16).padStart(16, '0');
}

/** The store specs the routing topology declares. */
export function routingStoreSpecs(backend: 'rocksdb' | 'memory' = 'rocksdb'): StoreSpec<string, unknown>[] {
  const opts = { backend };
  return [
    keyValueStore(RoutingStores.agents, Serdes.string(), Serdes.json<AgentState>(), opts),
    keyValueStore(RoutingStores.conversations, Serdes.string(), Serdes.json<ConversationState>(), opts),
    keyValueStore(RoutingStores.queue, Serdes.string(), Serdes.json<WaitingConversation>(), opts),
    keyValueStore(RoutingStores.stats, Serdes.string(), Serdes.json<SkillGauges | number>(), opts),
    keyValueStore(RoutingStores.endedExpiry, Serdes.string(), Serdes.json<number>(), opts),
  ] as StoreSpec<string, unknown>[];
}

export function routingDedupeStoreSpecs(backend: 'rocksdb' | 'memory' = 'rocksdb'): StoreSpec<string, number>[] {
  return [dedupeStore(RoutingStores.agentEventIds, backend), dedupeStore(RoutingStores.conversationEventIds, backend)];
}

/** A tenant's agents, in agentId order (one prefix scan). */
export async function agentsOfTenant(store: KeyValueStore<string, AgentState>, tenantId: string): Promise<AgentState[]> {
  const agents: AgentState[] = [];
  for await (const { value } of store.prefixScan(tenantPrefix(tenantId))) agents.push(value);
  return agents;
}

/** The first conversation in serving order waiting for `skill`, if any. */
export async function queueHead(store: KeyValueStore<string, WaitingConversation>, tenantId: string, skill: string): Promise<WaitingConversation | undefined> {
  for await (const { value } of store.prefixScan(skillQueuePrefix(tenantId, skill))) return value;
  return undefined;
}

/** Queue depth and active conversations of one tenant and skill. */
export async function skillGauges(store: KeyValueStore<string, SkillGauges | number>, tenantId: string, skill: string): Promise<SkillGauges> {
  const v = await store.get(skillGaugeKey(tenantId, skill));
  return typeof v === 'object' ? v : { waiting: 0, active: 0 };
}

/** The ignored-event counters of one tenant (only those ever counted). */
export async function routingCounters(store: KeyValueStore<string, SkillGauges | number>, tenantId: string): Promise<Partial<Record<RoutingCounter, number>>> {
  const out: Partial<Record<RoutingCounter, number>> = {};
  const prefix = `${tenantId}${SEP}count${SEP}`;
  for await (const { key, value } of store.prefixScan(prefix)) {
    if (typeof value === 'number') out[key.slice(prefix.length) as RoutingCounter] = value;
  }
  return out;
}
