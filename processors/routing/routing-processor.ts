import type { Processor, ProcessorContext, Record } from '../../runtime/processor.js';
import type { KeyValueStore } from '../../state/store.js';
import type { AgentEvent, ConversationEvent, RoutingDecision } from '../../schemas/types.js';
import { StoredStreamTime } from '../stored-stream-time.js';
import {
  applyAgentEvent,
  chooseAgent,
  hasSpareCapacity,
  nextAssignment,
  withAssignment,
  type AgentChoice,
  type AgentState,
  type WaitingConversation,
} from './policy.js';
import {
  RoutingStores,
  agentKey,
  agentsOfTenant,
  conversationKey,
  counterKey,
  endedExpiryKey,
  endedExpiryUpperBound,
  parseEndedExpiryKey,
  queueHead,
  queueKey,
  skillGaugeKey,
  STREAM_TIME_KEY,
  type ConversationState,
  type RoutingCounter,
  type SkillGauges,
} from './stores.js';

export interface RoutingProcessorOptions {
  /** Topic of agent events; records from any other topic are conversation events of `conversationTopic`. */
  agentTopic: string;
  conversationTopic: string;
  /** How long (event time) an ended conversation id is remembered; a REQUESTED for it meanwhile is ignored. */
  endedRetentionMs: number;
  /** Stream-time interval of the sweep that forgets ended conversation ids. */
  cleanupIntervalMs: number;
}

type RoutingInput = AgentEvent | ConversationEvent;

/**
 * Routes a tenant's conversations to its agents: the glue between the records, the stores and the pure policy.
 * Responsible for:
 * - applying agent events (login, logout, status, skills, capacity) and conversation events (requested, ended)
 *   to the tenant's state in the routing stores (see stores.ts for the layout);
 * - assigning a requested conversation at once when an agent is eligible, else queueing it;
 * - serving the queue the moment capacity frees (ENDED, LOGIN, STATUS to AVAILABLE, more capacity or skills),
 *   as many conversations as slots freed, in queue order;
 * - emitting one RoutingDecision per assigned conversation, keyed by tenantId, stamped with the input's timestamp;
 * - counting events that change nothing, and forgetting ended conversation ids after the retention.
 * Both input topics meet here (one task per tenant partition), so one tenant's agents and queue are one state.
 * Records arrive already deduplicated by eventId and validated (see validate.ts).
 */
export class RoutingProcessor implements Processor<string, RoutingInput, string, RoutingDecision> {
  private ctx!: ProcessorContext<string, RoutingDecision>;
  private agents!: KeyValueStore<string, AgentState>;
  private conversations!: KeyValueStore<string, ConversationState>;
  private queue!: KeyValueStore<string, WaitingConversation>;
  private stats!: KeyValueStore<string, SkillGauges | number>;
  private endedExpiry!: KeyValueStore<string, number>;
  private streamTime!: StoredStreamTime;

  constructor(private readonly opts: RoutingProcessorOptions) {}

  init(ctx: ProcessorContext<string, RoutingDecision>): void {
    this.ctx = ctx;
    this.agents = ctx.getStore(RoutingStores.agents);
    this.conversations = ctx.getStore(RoutingStores.conversations);
    this.queue = ctx.getStore(RoutingStores.queue);
    this.stats = ctx.getStore(RoutingStores.stats);
    this.endedExpiry = ctx.getStore(RoutingStores.endedExpiry);
    this.streamTime = new StoredStreamTime(this.endedExpiry, STREAM_TIME_KEY);
    ctx.schedule(this.opts.cleanupIntervalMs, 'stream-time', () => this.forgetEnded());
  }

  async process(record: Record<string, RoutingInput>): Promise<void> {
    await this.streamTime.advance(record.timestamp);
    const topic = this.ctx.recordMetadata()?.topic;
    if (topic === this.opts.agentTopic) await this.onAgentEvent(record.value as AgentEvent, record.timestamp);
    else if (topic === this.opts.conversationTopic) await this.onConversationEvent(record.value as ConversationEvent, record.timestamp);
    else throw new Error(`routing reads ${this.opts.agentTopic} and ${this.opts.conversationTopic}, not ${String(topic)}`);
  }

  private async onAgentEvent(ev: AgentEvent, timestamp: number): Promise<void> {
    const key = agentKey(ev.tenantId, ev.agentId);
    const result = applyAgentEvent(await this.agents.get(key), ev);
    if ('ignored' in result) return this.count(ev.tenantId, result.ignored);
    this.agents.put(key, result.next);
    // Only this agent changed, so only waiting conversations of its skills can have gained a candidate.
    if (hasSpareCapacity(result.next)) await this.serveQueue(ev.tenantId, result.next.skills, ev.eventTime, timestamp);
  }

  private async onConversationEvent(ev: ConversationEvent, timestamp: number): Promise<void> {
    if (ev.type === 'REQUESTED') return this.onRequested(ev, timestamp);
    return this.onEnded(ev, timestamp);
  }

  private async onRequested(ev: ConversationEvent, timestamp: number): Promise<void> {
    const tenant = ev.tenantId;
    const existing = await this.conversation(tenant, ev.conversationId);
    if (existing) return this.count(tenant, existing.state === 'ENDED' ? 'requestAfterEnd' : 'requestRepeated');
    // Validation guarantees skill and priority on REQUESTED.
    const waiting: WaitingConversation = { conversationId: ev.conversationId, skill: ev.skill!, priority: ev.priority!, requestedAt: ev.eventTime };
    const choice = chooseAgent(await agentsOfTenant(this.agents, tenant), waiting.skill);
    if (choice) {
      await this.assign(tenant, waiting, choice, ev.eventTime, false, timestamp);
      return;
    }
    // Nobody eligible now; whatever frees capacity for this skill serves the queue (see serveQueue).
    this.queue.put(queueKey(tenant, waiting), waiting);
    this.conversations.put(conversationKey(tenant, waiting.conversationId), { state: 'WAITING', skill: waiting.skill, priority: waiting.priority, requestedAt: waiting.requestedAt });
    await this.gauge(tenant, waiting.skill, { waiting: +1 });
  }

  private async onEnded(ev: ConversationEvent, timestamp: number): Promise<void> {
    const tenant = ev.tenantId;
    const existing = await this.conversation(tenant, ev.conversationId);
    if (!existing || existing.state === 'ENDED') {
      await this.count(tenant, 'endedUnknown');
      // An ENDED seen first still guards against a REQUESTED arriving after it.
      if (!existing) this.rememberEnded(tenant, ev.conversationId, ev.eventTime);
      return;
    }
    this.rememberEnded(tenant, ev.conversationId, ev.eventTime);
    if (existing.state === 'WAITING') {
      this.queue.delete(queueKey(tenant, { conversationId: ev.conversationId, ...existing }));
      await this.gauge(tenant, existing.skill, { waiting: -1 });
      return;
    }
    await this.gauge(tenant, existing.skill, { active: -1 });
    const aKey = agentKey(tenant, existing.agentId);
    const agent = await this.agents.get(aKey);
    if (!agent) throw new Error(`conversation ${ev.conversationId} of tenant ${tenant} is assigned to unknown agent ${existing.agentId}`);
    const freed: AgentState = { ...agent, load: Math.max(0, agent.load - 1) };
    this.agents.put(aKey, freed);
    if (hasSpareCapacity(freed)) await this.serveQueue(tenant, freed.skills, ev.eventTime, timestamp);
  }

  /**
   * Assign waiting conversations of `skills` while any has an eligible agent, best in queue order first.
   * `at` is the event time of the event that freed capacity; a conversation requested later than that (input
   * out of order across the two topics) is stamped with its own request time, so waitMs is never negative.
   */
  private async serveQueue(tenant: string, skills: readonly string[], at: number, timestamp: number): Promise<void> {
    const heads = new Map<string, WaitingConversation>();
    for (const skill of skills) {
      const head = await queueHead(this.queue, tenant, skill);
      if (head) heads.set(skill, head);
    }
    if (heads.size === 0) return;
    const agents = await agentsOfTenant(this.agents, tenant);
    for (;;) {
      const next = nextAssignment(agents, heads.values());
      if (!next) return;
      const { conversation, choice } = next;
      this.queue.delete(queueKey(tenant, conversation));
      await this.gauge(tenant, conversation.skill, { waiting: -1 });
      const assigned = await this.assign(tenant, conversation, choice, Math.max(at, conversation.requestedAt), true, timestamp);
      agents[agents.indexOf(choice.agent)] = assigned;
      const head = await queueHead(this.queue, tenant, conversation.skill);
      if (head) heads.set(conversation.skill, head);
      else heads.delete(conversation.skill);
    }
  }

  /** Record the assignment in the stores and emit its decision; returns the agent as it is now. */
  private async assign(tenant: string, w: WaitingConversation, choice: AgentChoice, assignedAt: number, queued: boolean, timestamp: number): Promise<AgentState> {
    const agent = withAssignment(choice.agent, assignedAt);
    this.agents.put(agentKey(tenant, agent.agentId), agent);
    this.conversations.put(conversationKey(tenant, w.conversationId), {
      state: 'ACTIVE',
      skill: w.skill,
      priority: w.priority,
      requestedAt: w.requestedAt,
      agentId: agent.agentId,
      assignedAt,
    });
    await this.gauge(tenant, w.skill, { active: +1 });
    const decision: RoutingDecision = {
      tenantId: tenant,
      conversationId: w.conversationId,
      agentId: agent.agentId,
      skill: w.skill,
      priority: w.priority,
      requestedAt: w.requestedAt,
      assignedAt,
      waitMs: assignedAt - w.requestedAt,
      queued,
      reason: choice.reason,
    };
    await this.ctx.forward({ key: tenant, value: decision, timestamp });
    return agent;
  }

  private rememberEnded(tenant: string, conversationId: string, endedAt: number): void {
    this.conversations.put(conversationKey(tenant, conversationId), { state: 'ENDED', endedAt });
    this.endedExpiry.put(endedExpiryKey(endedAt, tenant, conversationId), endedAt);
  }

  /**
   * A conversation's state, with an ENDED one older than the retention (by this processor's stored stream time)
   * treated as forgotten whether or not `forgetEnded` has deleted it yet: decisions then do not depend on when the
   * cleanup punctuator ran or where restarts fell.
   */
  private async conversation(tenant: string, conversationId: string): Promise<ConversationState | undefined> {
    const state = await this.conversations.get(conversationKey(tenant, conversationId));
    if (state?.state === 'ENDED' && state.endedAt < (await this.streamTime.now()) - this.opts.endedRetentionMs) return undefined;
    return state;
  }

  private async forgetEnded(): Promise<void> {
    const cutoff = (await this.streamTime.now()) - this.opts.endedRetentionMs;
    if (cutoff <= 0) return;
    const expired: Array<[string, number]> = [];
    for await (const { key, value } of this.endedExpiry.range(undefined, endedExpiryUpperBound(cutoff - 1))) expired.push([key, value]);
    for (const [key, endedAt] of expired) {
      this.endedExpiry.delete(key);
      const { tenantId, conversationId } = parseEndedExpiryKey(key);
      const cKey = conversationKey(tenantId, conversationId);
      const state = await this.conversations.get(cKey);
      if (state?.state === 'ENDED' && state.endedAt === endedAt) this.conversations.delete(cKey);
    }
  }

  private async gauge(tenant: string, skill: string, delta: { waiting?: number; active?: number }): Promise<void> {
    const key = skillGaugeKey(tenant, skill);
    const prev = await this.stats.get(key);
    const g: SkillGauges = typeof prev === 'object' ? prev : { waiting: 0, active: 0 };
    this.stats.put(key, { waiting: g.waiting + (delta.waiting ?? 0), active: g.active + (delta.active ?? 0) });
  }

  private async count(tenant: string, name: RoutingCounter): Promise<void> {
    const key = counterKey(tenant, name);
    const prev = await this.stats.get(key);
    this.stats.put(key, (typeof prev === 'number' ? prev : 0) + 1);
    this.ctx.count(name);
  }
}
