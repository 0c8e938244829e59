/**
 * A seeded, deterministic generator of routing input: many tenants, agents and skills; logins, logouts and status
 * changes (availability, skills, capacity); requested and ended conversations with priorities; duplicates (the
 * same event re-sent with its eventId); a few ENDED for unknown conversations, out-of-session agent events and
 * invalid records; and the two topics arriving slightly out of order with respect to each other (each topic stays
 * in event-time order, as one tenant's partition does).
 *
 * The same seed always yields the same events in the same delivery order.
 */
import type { AgentEvent, ConversationEvent } from '../../schemas/types.js';
import { mulberry32 } from './random.js';

export type GeneratedEvent =
  | { topic: 'agent-events'; key: string; value: AgentEvent; duplicate: boolean; invalid: boolean }
  | { topic: 'conversation-events'; key: string; value: ConversationEvent; duplicate: boolean; invalid: boolean };

export interface RoutingGeneratorOptions {
  seed: number;
  tenants?: number;
  /** Simulation steps; each makes one event (duplicates come on top). */
  steps?: number;
  /** Share of events re-sent with the same eventId. */
  duplicateRate?: number;
  /** Share of invalid records (they must go to the dead-letter topic). */
  invalidRate?: number;
  /** How far (ms of event time) one topic's delivery may lag the other's. */
  maxSkewMs?: number;
  startTime?: number;
  /** Largest event-time step between simulation steps (ms); a step is 0 (15 %) or 1..maxStepMs. Default 900. */
  maxStepMs?: number;
  /** The skills tenants draw theirs from; default eight (billing, sales, …). */
  skillPool?: readonly string[];
}

/** mulberry32, deterministic per seed. */
export const prng = mulberry32;

export const SKILL_POOL: readonly string[] = ['billing', 'sales', 'support', 'tech', 'returns', 'vip', 'fr', 'de'];

interface SimAgent {
  id: string;
  loggedIn: boolean;
}

interface SimTenant {
  id: string;
  skills: string[];
  agents: SimAgent[];
  open: string[];
  ended: string[];
}

export function generateRoutingEvents(opts: RoutingGeneratorOptions): GeneratedEvent[] {
  const rnd = prng(opts.seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const chance = (p: number) => rnd() < p;
  const letters = (n: number) => Array.from({ length: n }, () => String.fromCharCode(97 + int(0, 25))).join('');

  const skillPool = opts.skillPool ?? SKILL_POOL;
  const tenants: SimTenant[] = [];
  const tenantCount = opts.tenants ?? 8;
  for (let i = 0; i < tenantCount; i++) {
    const skills = skillPool.filter(() => chance(0.5));
    while (skills.length < 2) skills.push(pick(skillPool.filter((s) => !skills.includes(s))));
    const agentIds = new Set<string>();
    const n = int(3, 9);
    // Random ids so the agentId tie-break is not the login order.
    while (agentIds.size < n) agentIds.add(`ag-${letters(2)}`);
    tenants.push({ id: `tenant-${letters(3)}${i}`, skills, agents: [...agentIds].map((id) => ({ id, loggedIn: false })), open: [], ended: [] });
  }

  let time = opts.startTime ?? 1_700_000_000_000;
  let seq = 0;
  const eventId = () => `ev-${(seq++).toString(36)}-${letters(4)}`;
  const agentEvents: GeneratedEvent[] = [];
  const conversationEvents: GeneratedEvent[] = [];
  let conversationSeq = 0;

  const agentEvent = (t: SimTenant, agentId: string, type: AgentEvent['type'], status: AgentEvent['status'], skills: string[], maxConcurrent: number) => {
    const value: AgentEvent = { eventId: eventId(), tenantId: t.id, agentId, type, status, skills, maxConcurrent, eventTime: time };
    agentEvents.push({ topic: 'agent-events', key: t.id, value, duplicate: false, invalid: false });
  };
  const conversationEvent = (t: SimTenant, conversationId: string, type: ConversationEvent['type'], skill: string | null, priority: number | null) => {
    const value: ConversationEvent = { eventId: eventId(), tenantId: t.id, conversationId, type, skill, priority, eventTime: time };
    conversationEvents.push({ topic: 'conversation-events', key: t.id, value, duplicate: false, invalid: false });
  };
  const someSkills = (t: SimTenant) => {
    const s = t.skills.filter(() => chance(0.6));
    if (s.length === 0) s.push(pick(t.skills));
    // Sometimes an unordered list with a repeat: the set is what counts.
    if (chance(0.1)) s.push(s[0]!);
    return s.reverse();
  };

  // The shift starts: most agents log in together, so never-assigned agents tie on idle time.
  for (const t of tenants) {
    for (const agent of t.agents) {
      if (chance(0.2)) continue;
      agent.loggedIn = true;
      agentEvent(t, agent.id, 'LOGIN', chance(0.9) ? 'AVAILABLE' : 'AWAY', someSkills(t), int(1, 3));
    }
  }

  const steps = opts.steps ?? 3000;
  for (let step = 0; step < steps; step++) {
    // Equal times happen (a step of 0), so idle-time ties and request-time ties occur.
    time += chance(0.15) ? 0 : int(1, opts.maxStepMs ?? 900);
    const t = pick(tenants);
    const r = rnd();
    if (r < 0.28) {
      const agent = pick(t.agents);
      if (!agent.loggedIn) {
        if (chance(0.05)) {
          // Out of session: ignored by routing, and counted.
          if (chance(0.5)) agentEvent(t, agent.id, 'STATUS', 'AVAILABLE', someSkills(t), int(1, 3));
          else agentEvent(t, agent.id, 'LOGOUT', null, [], 0);
        } else {
          agent.loggedIn = true;
          agentEvent(t, agent.id, 'LOGIN', chance(0.8) ? 'AVAILABLE' : 'AWAY', someSkills(t), int(1, 3));
        }
      } else if (chance(0.15)) {
        agent.loggedIn = false;
        agentEvent(t, agent.id, 'LOGOUT', null, [], 0);
      } else {
        // Availability flips, new skill sets, capacity up or down (down to 0, and below the current load).
        agentEvent(t, agent.id, 'STATUS', chance(0.75) ? 'AVAILABLE' : 'AWAY', someSkills(t), chance(0.08) ? 0 : int(1, 4));
      }
    } else if (chance(t.open.length / (t.open.length + 6))) {
      // End an open conversation (assigned or still waiting: abandoned), rarely one never requested or ended twice.
      if (chance(0.02)) {
        conversationEvent(t, chance(0.5) && t.ended.length > 0 ? pick(t.ended) : `ghost-${letters(5)}`, 'ENDED', null, null);
      } else {
        const i = Math.floor(rnd() * t.open.length);
        const id = t.open[i]!;
        t.open.splice(i, 1);
        t.ended.push(id);
        conversationEvent(t, id, 'ENDED', null, null);
      }
    } else {
      // Sometimes a burst at one instant (agents then tie on idle time); a skill nobody in the tenant may have
      // ('rare') now and then: it waits until it ends.
      const burst = chance(0.12) ? int(2, 4) : 1;
      for (let k = 0; k < burst; k++) {
        const skill = chance(0.03) ? 'rare' : pick(t.skills);
        const id = `cv-${letters(3)}${(conversationSeq++).toString(36)}`;
        t.open.push(id);
        conversationEvent(t, id, 'REQUESTED', skill, pick([0, 0, 0, 1, 1, 2, 5, -1]));
      }
    }
  }

  const withExtras = (list: GeneratedEvent[]) => {
    const out: GeneratedEvent[] = [];
    for (const e of list) {
      out.push(e);
      if (chance(opts.invalidRate ?? 0.005)) out.push(invalidVariant(e, eventId(), pick));
    }
    // Duplicates: the same record again a little later in the same topic (never before its original).
    for (let i = out.length - 1; i >= 0; i--) {
      const e = out[i]!;
      if (e.invalid || !chance(opts.duplicateRate ?? 0.06)) continue;
      const dup = { ...e, value: { ...e.value }, duplicate: true } as GeneratedEvent;
      out.splice(Math.min(out.length, i + 1 + int(0, 6)), 0, dup);
    }
    return out;
  };

  return mergeWithSkew(withExtras(agentEvents), withExtras(conversationEvents), opts.maxSkewMs ?? 3000, rnd);
}

/** An invalid record derived from a valid one (a fresh eventId, so only validation can reject it). */
export function invalidVariant(e: GeneratedEvent, id: string, pick: <T>(xs: readonly T[]) => T): GeneratedEvent {
  if (e.topic === 'agent-events') {
    const v = { ...e.value, eventId: id };
    const bad = pick<Partial<AgentEvent> & { eventId: string }>([
      { ...v, type: 'LOGOUT', status: 'AVAILABLE' },
      { ...v, type: 'STATUS', status: null },
      { ...v, type: 'LOGIN', status: 'AVAILABLE', maxConcurrent: -1 },
    ]);
    return { ...e, value: bad as AgentEvent, invalid: true };
  }
  const v = { ...e.value, eventId: id };
  const bad = pick<ConversationEvent>([
    { ...v, type: 'REQUESTED', skill: null, priority: 1 },
    { ...v, type: 'REQUESTED', skill: 'tech', priority: null },
    { ...v, type: 'ENDED', skill: 'tech', priority: null },
    { ...v, type: 'ENDED', skill: null, priority: 3 },
  ]);
  return { ...e, value: bad, invalid: true };
}

/**
 * Interleave the two topics as a consumer of both might see them: each record arrives at its event time plus a
 * lag that wanders per topic (never reordering within a topic), so the topics drift up to `maxSkewMs` apart.
 */
function mergeWithSkew(a: GeneratedEvent[], b: GeneratedEvent[], maxSkewMs: number, rnd: () => number): GeneratedEvent[] {
  const arrivals = (list: GeneratedEvent[]) => {
    let last = -Infinity;
    return list.map((e) => (last = Math.max(last, e.value.eventTime + Math.floor(rnd() * maxSkewMs))));
  };
  const ta = arrivals(a);
  const tb = arrivals(b);
  const out: GeneratedEvent[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const takeA = j >= b.length || (i < a.length && (ta[i]! < tb[j]! || (ta[i] === tb[j] && rnd() < 0.5)));
    out.push(takeA ? a[i++]! : b[j++]!);
  }
  return out;
}
