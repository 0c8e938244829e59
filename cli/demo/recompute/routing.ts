/**
 * Routing invariants and end state recomputed from the routing inputs and decisions alone, written from DESIGN.md's
 * routing rules and sharing no code with processors/routing: the demo's summary and the routing tests check the
 * application against it.
 * - `CapacityReplay`: fed the inputs and the decisions in the order the application handled them, it checks what
 *   must hold at every decision (agent in session, AVAILABLE, with the skill, below capacity; conversation
 *   requested, not ended, never assigned before);
 * - `routingEndState`: once everything is processed, the live load of every agent and the queue depth per tenant
 *   and skill, which do not depend on how the two input topics interleaved;
 * - `agentUtilisation`: handled conversation-time over the capacity-time agents were logged in (event time).
 * Inputs passed here are valid and deduplicated (first event per eventId).
 */
import type { AgentEvent, ConversationEvent, RoutingDecision } from '../../../schemas/types.js';

export type RoutingInput = { topic: 'agent-events'; value: AgentEvent } | { topic: 'conversation-events'; value: ConversationEvent };

/**
 * Replays only the agent events, the decisions and the ENDED events (no policy) and checks what must hold at every
 * decision: the agent is in session, AVAILABLE, has the skill and is below capacity; the conversation was requested,
 * has not ended and was never assigned before.
 */
export class CapacityReplay {
  private readonly agents = new Map<string, { inSession: boolean; status: string | null; skills: string[]; max: number; load: number }>();
  private readonly requested = new Set<string>();
  private readonly ended = new Set<string>();
  private readonly assigned = new Map<string, string>();
  readonly violations: string[] = [];
  maxLoadSeen = 0;
  decisions = 0;

  event(e: RoutingInput): void {
    if (e.topic === 'agent-events') {
      const ev = e.value;
      const key = `${ev.tenantId}/${ev.agentId}`;
      const a = this.agents.get(key);
      if (ev.type === 'LOGOUT') {
        if (a) a.inSession = false;
      } else if (ev.type === 'LOGIN' || a?.inSession) {
        this.agents.set(key, { inSession: true, status: ev.status, skills: ev.skills, max: ev.maxConcurrent, load: a?.load ?? 0 });
      }
      return;
    }
    const ev = e.value;
    const key = `${ev.tenantId}/${ev.conversationId}`;
    if (ev.type === 'REQUESTED') {
      if (!this.ended.has(key)) this.requested.add(key);
      return;
    }
    if (this.ended.has(key)) return;
    this.ended.add(key);
    const agent = this.assigned.get(key);
    if (agent) this.agents.get(agent)!.load--;
  }

  decision(d: RoutingDecision): void {
    this.decisions++;
    const key = `${d.tenantId}/${d.conversationId}`;
    const agentKey = `${d.tenantId}/${d.agentId}`;
    const a = this.agents.get(agentKey);
    const fail = (why: string): void => void this.violations.push(`${key} → ${d.agentId}: ${why}`);
    if (this.assigned.has(key)) fail('assigned twice');
    if (!this.requested.has(key)) fail('never requested');
    if (this.ended.has(key)) fail('already ended');
    if (!a) return fail('unknown agent');
    if (!a.inSession || a.status !== 'AVAILABLE') fail(`agent not AVAILABLE (${a.inSession ? a.status : 'logged out'})`);
    if (!a.skills.includes(d.skill)) fail(`agent lacks skill ${d.skill}`);
    if (a.load >= a.max) fail(`agent at capacity ${a.load}/${a.max}`);
    if (d.waitMs !== d.assignedAt - d.requestedAt || d.waitMs < 0) fail(`bad waitMs ${d.waitMs}`);
    a.load++;
    this.maxLoadSeen = Math.max(this.maxLoadSeen, a.load);
    if (a.load > a.max) fail(`agent above capacity ${a.load}/${a.max}`);
    this.assigned.set(key, agentKey);
  }
}

export interface RoutingEndState {
  /** tenant → agentId → conversations assigned and not ended, for every agent that ever logged in */
  agentLoad: Map<string, Map<string, number>>;
  /** tenant → skill → conversations waiting (requested, never assigned, not ended); only non-zero depths */
  queueDepth: Map<string, Map<string, number>>;
}

/**
 * The live state once every input is processed. `inputs` in topic order (each topic keeps event-time order per
 * tenant); `decisions` in any order. Independent of how the two topics interleaved: a conversation ends at most
 * once, and its ENDED either finds it waiting (it is never assigned) or assigned (the load drops).
 */
export function routingEndState(inputs: readonly RoutingInput[], decisions: readonly RoutingDecision[]): RoutingEndState {
  const agentLoad = new Map<string, Map<string, number>>();
  const tenantMap = <V>(m: Map<string, Map<string, V>>, tenant: string) => {
    let t = m.get(tenant);
    if (!t) m.set(tenant, (t = new Map()));
    return t;
  };
  const requested = new Map<string, { tenant: string; skill: string }>();
  const ended = new Set<string>();
  for (const e of inputs) {
    if (e.topic === 'agent-events') {
      if (e.value.type === 'LOGIN') {
        const loads = tenantMap(agentLoad, e.value.tenantId);
        if (!loads.has(e.value.agentId)) loads.set(e.value.agentId, 0);
      }
      continue;
    }
    const key = `${e.value.tenantId}/${e.value.conversationId}`;
    if (e.value.type === 'ENDED') ended.add(key);
    else if (!ended.has(key) && !requested.has(key)) requested.set(key, { tenant: e.value.tenantId, skill: e.value.skill! });
  }
  const assigned = new Set<string>();
  for (const d of decisions) {
    const key = `${d.tenantId}/${d.conversationId}`;
    assigned.add(key);
    if (ended.has(key)) continue;
    const loads = tenantMap(agentLoad, d.tenantId);
    loads.set(d.agentId, (loads.get(d.agentId) ?? 0) + 1);
  }
  const queueDepth = new Map<string, Map<string, number>>();
  for (const [key, { tenant, skill }] of requested) {
    if (assigned.has(key) || ended.has(key)) continue;
    const depths = tenantMap(queueDepth, tenant);
    depths.set(skill, (depths.get(skill) ?? 0) + 1);
  }
  return { agentLoad, queueDepth };
}

/**
 * Busy conversation-time (assignedAt → its ENDED's eventTime, or `until`) over capacity-time (maxConcurrent while
 * logged in, from LOGIN/STATUS/LOGOUT event times up to `until`), summed over all agents; event time.
 */
export function agentUtilisation(inputs: readonly RoutingInput[], decisions: readonly RoutingDecision[], until: number): { busyMs: number; capacityMs: number } {
  const sessions = new Map<string, { since: number; max: number }>();
  let capacityMs = 0;
  const endedAt = new Map<string, number>();
  for (const e of inputs) {
    if (e.topic === 'conversation-events') {
      if (e.value.type === 'ENDED') {
        const key = `${e.value.tenantId}/${e.value.conversationId}`;
        if (!endedAt.has(key)) endedAt.set(key, e.value.eventTime);
      }
      continue;
    }
    const ev = e.value;
    const key = `${ev.tenantId}/${ev.agentId}`;
    const open = sessions.get(key);
    if (open) capacityMs += Math.max(0, ev.eventTime - open.since) * open.max;
    if (ev.type === 'LOGOUT') sessions.delete(key);
    else if (ev.type === 'LOGIN' || open) sessions.set(key, { since: ev.eventTime, max: ev.maxConcurrent });
  }
  for (const open of sessions.values()) capacityMs += Math.max(0, until - open.since) * open.max;
  let busyMs = 0;
  for (const d of decisions) busyMs += Math.max(0, (endedAt.get(`${d.tenantId}/${d.conversationId}`) ?? until) - d.assignedAt);
  return { busyMs, capacityMs };
}
