/**
 * The routing policy as pure functions: no stores, no I/O, no clock. The processor loads a tenant's state,
 * asks these functions what to do, and writes the result back; tests can call them directly.
 *
 * Policy (DESIGN.md, Domain rules, Routing):
 * - eligible agents: logged in, AVAILABLE, having the skill (exact string match), load below maxConcurrent;
 * - among them the lowest load wins, then the longest since the last assignment (the earliest `lastAssignedAt`;
 *   an agent never assigned counts as idle the longest, and two never-assigned agents tie), then the
 *   smallest agentId;
 * - waiting conversations are served by priority (higher first), then request time (earlier first), then
 *   the smallest conversationId.
 * "Smallest" / string order for ids is Unicode code point order, which is also the UTF-8 byte order the
 * stores scan in, so the in-memory comparisons and the store order always agree.
 */
import type { AgentEvent, RoutingDecision } from '../../schemas/types.js';

/** LOGGED_OUT: the agent has no session (after LOGOUT, or never logged in); it takes nothing new. */
export type AgentStatus = 'AVAILABLE' | 'AWAY' | 'LOGGED_OUT';

export type RoutingReason = RoutingDecision['reason'];

/** What routing knows about one agent of a tenant. */
export interface AgentState {
  agentId: string;
  status: AgentStatus;
  /** The complete skill set of the last LOGIN/STATUS, deduplicated and in code point order. */
  skills: string[];
  maxConcurrent: number;
  /** Conversations assigned to the agent and not yet ended (kept across AWAY and LOGOUT). */
  load: number;
  /** Latest assignedAt (event time) of a conversation given to this agent; null when never assigned. */
  lastAssignedAt: number | null;
  /** Event time of the last agent event applied. */
  updatedAt: number;
}

/** A conversation in a tenant's queue. */
export interface WaitingConversation {
  conversationId: string;
  skill: string;
  priority: number;
  requestedAt: number;
}

/** A choice of agent for one conversation, and the rule of the policy that made it. */
export interface AgentChoice {
  agent: AgentState;
  reason: RoutingReason;
}

/** Code point order (= UTF-8 byte order): UTF-16 code unit order with surrogates moved above U+E000–U+FFFF. */
export function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

/** Whether the agent may take a new conversation needing `skill`. */
export function isEligible(agent: AgentState, skill: string): boolean {
  return agent.status === 'AVAILABLE' && agent.load < agent.maxConcurrent && agent.skills.includes(skill);
}

/** Whether the agent can take any new conversation at all (then waiting ones of its skills may be served). */
export function hasSpareCapacity(agent: AgentState): boolean {
  return agent.status === 'AVAILABLE' && agent.load < agent.maxConcurrent && agent.skills.length > 0;
}

/** The policy order of eligible agents: best first. */
export function compareAgents(a: AgentState, b: AgentState): number {
  if (a.load !== b.load) return a.load - b.load;
  if (a.lastAssignedAt !== b.lastAssignedAt) {
    // Never assigned (null) is idle the longest.
    if (a.lastAssignedAt === null) return -1;
    if (b.lastAssignedAt === null) return 1;
    return a.lastAssignedAt - b.lastAssignedAt;
  }
  return compareIds(a.agentId, b.agentId);
}

/** The agent the policy picks for a conversation needing `skill`, or undefined when none is eligible. */
export function chooseAgent(agents: Iterable<AgentState>, skill: string): AgentChoice | undefined {
  const candidates: AgentState[] = [];
  for (const a of agents) if (isEligible(a, skill)) candidates.push(a);
  candidates.sort(compareAgents);
  const best = candidates[0];
  if (!best) return undefined;
  const runnerUp = candidates[1];
  if (!runnerUp) return { agent: best, reason: 'ONLY_CANDIDATE' };
  // Sorted, so the runner-up is the closest competitor: the first rule on which it differs decided.
  if (runnerUp.load !== best.load) return { agent: best, reason: 'LEAST_LOADED' };
  if (runnerUp.lastAssignedAt !== best.lastAssignedAt) return { agent: best, reason: 'LONGEST_IDLE' };
  return { agent: best, reason: 'LOWEST_AGENT_ID' };
}

/** Queue order: higher priority, then earlier request, then smaller conversationId. */
export function compareWaiting(a: WaitingConversation, b: WaitingConversation): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  if (a.requestedAt !== b.requestedAt) return a.requestedAt - b.requestedAt;
  return compareIds(a.conversationId, b.conversationId);
}

/**
 * The next assignment out of the queue: the first waiting conversation, in queue order, that has an eligible
 * agent, with the agent the policy picks for it. `heads` holds the head of each skill queue being drained (the
 * head is the best of its skill, and every conversation of a skill has the same candidates, so the heads decide).
 */
export function nextAssignment(
  agents: readonly AgentState[],
  heads: Iterable<WaitingConversation>,
): { conversation: WaitingConversation; choice: AgentChoice } | undefined {
  for (const conversation of [...heads].sort(compareWaiting)) {
    const choice = chooseAgent(agents, conversation.skill);
    if (choice) return { conversation, choice };
  }
  return undefined;
}

/** Why an agent event changed nothing (counted per tenant). */
export type IgnoredAgentEvent = 'statusWhileLoggedOut' | 'logoutWhileLoggedOut';

/**
 * The agent after an (already validated) agent event:
 * - LOGIN starts a session with the event's status, skills and capacity (a LOGIN during a session replaces them too);
 * - STATUS replaces status, skills and capacity of an agent in session; for an agent not logged in it is ignored,
 *   since only a LOGIN starts a session (the safe choice: nothing is routed to an agent that never logged in);
 * - LOGOUT ends the session; skills and capacity of the event are ignored;
 * load and lastAssignedAt are kept throughout: current conversations stay with the agent until they end.
 */
export function applyAgentEvent(prev: AgentState | undefined, ev: AgentEvent): { next: AgentState } | { ignored: IgnoredAgentEvent } {
  const inSession = prev !== undefined && prev.status !== 'LOGGED_OUT';
  const kept = { load: prev?.load ?? 0, lastAssignedAt: prev?.lastAssignedAt ?? null };
  switch (ev.type) {
    case 'LOGOUT':
      if (!inSession) return { ignored: 'logoutWhileLoggedOut' };
      return { next: { ...prev, status: 'LOGGED_OUT', updatedAt: ev.eventTime } };
    case 'STATUS':
      if (!inSession) return { ignored: 'statusWhileLoggedOut' };
      return { next: sessionState(ev, kept) };
    case 'LOGIN':
      return { next: sessionState(ev, kept) };
    default: {
      const unknown: never = ev.type;
      throw new Error(`unknown agent event type ${String(unknown)}`);
    }
  }
}

function sessionState(ev: AgentEvent, kept: { load: number; lastAssignedAt: number | null }): AgentState {
  return {
    agentId: ev.agentId,
    // Validation guarantees a status on LOGIN and STATUS; an unknown one is AWAY (routes nothing).
    status: ev.status === 'AVAILABLE' ? 'AVAILABLE' : 'AWAY',
    skills: [...new Set(ev.skills)].sort(compareIds),
    maxConcurrent: ev.maxConcurrent,
    load: kept.load,
    lastAssignedAt: kept.lastAssignedAt,
    updatedAt: ev.eventTime,
  };
}

/** The agent after taking a conversation at `assignedAt` (lastAssignedAt only moves forward in event time). */
export function withAssignment(agent: AgentState, assignedAt: number): AgentState {
  return {
    ...agent,
    load: agent.load + 1,
    lastAssignedAt: agent.lastAssignedAt === null ? assignedAt : Math.max(agent.lastAssignedAt, assignedAt),
  };
}
