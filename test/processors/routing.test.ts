import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TopologyTestDriver, Serdes, partitionForKey, type InMemoryLog } from '../../index.js';
import { StateDirectory } from '../../state/state-directory.js';
import { routingTopology } from '../../topologies/routing.js';
import { duplicatesCounted } from '../../processors/dedupe.js';
import { RoutingStores, STREAM_TIME_KEY, agentsOfTenant, routingCounters, skillGauges, type SkillGauges } from '../../processors/routing/stores.js';
import type { AgentState } from '../../processors/routing/policy.js';
import type { AgentEvent, ConversationEvent, RoutingDecision } from '../../schemas/types.js';
import { generateRoutingEvents, type GeneratedEvent } from '../fixtures/routing-generator.js';
import avro from 'avsc';
import { contractOf } from '../../schemas/catalog.js';
import { CapacityReplay } from '../../cli/demo/recompute/routing.js';

const PARTITIONS = 3;
const serdes = {
  agentEvents: Serdes.json<AgentEvent>(),
  conversationEvents: Serdes.json<ConversationEvent>(),
  routingDecisions: Serdes.json<RoutingDecision>(),
};

type Backend = 'memory' | 'rocksdb';

function newDriver(backend: Backend, log?: InMemoryLog): TopologyTestDriver {
  const stateDirectory = backend === 'rocksdb' ? new StateDirectory(mkdtempSync(path.join(os.tmpdir(), 'weir-routing-')), 'test-app') : undefined;
  return new TopologyTestDriver(routingTopology({ serdes, backend, partitions: PARTITIONS }), {
    partitions: { 'agent-events': PARTITIONS, 'conversation-events': PARTITIONS, 'routing-decisions': PARTITIONS },
    stateDirectory,
    log,
  });
}

type Input = Pick<GeneratedEvent, 'topic' | 'key' | 'value'>;

/** Pipe one record and return the decisions it caused, in emission order (they share its timestamp). */
async function pipe(driver: TopologyTestDriver, e: Input): Promise<RoutingDecision[]> {
  await driver.pipeInput(e.topic, e.key, e.value, { timestamp: e.value.eventTime });
  const out = await driver.readOutput<string, RoutingDecision>('routing-decisions', Serdes.string(), Serdes.json());
  for (const r of out) {
    expect(r.key).toBe(r.value.tenantId);
    expect(r.timestamp).toBe(e.value.eventTime);
  }
  return out.map((r) => r.value);
}

async function storesOf(driver: TopologyTestDriver, tenant: string) {
  const partition = partitionForKey(Buffer.from(tenant), PARTITIONS);
  return {
    agents: await driver.getStore<string, AgentState>(RoutingStores.agents, partition),
    stats: await driver.getStore<string, SkillGauges | number>(RoutingStores.stats, partition),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// An independent reference of the rules, written from the spec (no code shared with processors/routing).

interface MAgent {
  loggedIn: boolean;
  status: 'AVAILABLE' | 'AWAY' | null;
  skills: Set<string>;
  max: number;
  load: number;
  lastAssignedAt: number | null;
}

interface MConversation {
  state: 'waiting' | 'active' | 'ended';
  skill: string;
  priority: number;
  requestedAt: number;
  agentId?: string;
}

interface MTenant {
  agents: Map<string, MAgent>;
  conversations: Map<string, MConversation>;
  counters: Record<string, number>;
}

type Expected = Omit<RoutingDecision, 'tenantId'>;

class ReferenceModel {
  readonly tenants = new Map<string, MTenant>();

  tenant(id: string): MTenant {
    let t = this.tenants.get(id);
    if (!t) this.tenants.set(id, (t = { agents: new Map(), conversations: new Map(), counters: {} }));
    return t;
  }

  /** The decisions this (deduplicated, valid) event must cause, applying it and them to the model. */
  apply(e: Input): Expected[] {
    const t = this.tenant(e.value.tenantId);
    const bump = (name: string) => (t.counters[name] = (t.counters[name] ?? 0) + 1);
    const out: Expected[] = [];
    const time = e.value.eventTime;
    if (e.topic === 'agent-events') {
      const v = e.value as AgentEvent;
      const a = t.agents.get(v.agentId);
      const inSession = a?.loggedIn ?? false;
      if (v.type === 'LOGOUT') {
        if (!inSession) bump('logoutWhileLoggedOut');
        else a!.loggedIn = false;
      } else if (v.type === 'STATUS' && !inSession) {
        bump('statusWhileLoggedOut');
      } else {
        t.agents.set(v.agentId, { loggedIn: true, status: v.status, skills: new Set(v.skills), max: v.maxConcurrent, load: a?.load ?? 0, lastAssignedAt: a?.lastAssignedAt ?? null });
      }
    } else {
      const v = e.value as ConversationEvent;
      const c = t.conversations.get(v.conversationId);
      if (v.type === 'REQUESTED') {
        if (c) bump(c.state === 'ended' ? 'requestAfterEnd' : 'requestRepeated');
        else {
          const conv: MConversation = { state: 'waiting', skill: v.skill!, priority: v.priority!, requestedAt: time };
          t.conversations.set(v.conversationId, conv);
          const choice = this.choose(t, conv.skill);
          if (choice) out.push(this.assign(t, v.conversationId, conv, choice, time, false));
        }
      } else if (!c || c.state === 'ended') {
        bump('endedUnknown');
        if (!c) t.conversations.set(v.conversationId, { state: 'ended', skill: '', priority: 0, requestedAt: 0 });
      } else {
        if (c.state === 'active') t.agents.get(c.agentId!)!.load--;
        c.state = 'ended';
      }
    }
    // Serve the whole tenant queue (not only the skills the processor looks at): whatever can be assigned now must be.
    for (;;) {
      const choices = new Map<string, ReturnType<ReferenceModel['choose']>>();
      const servable = [...t.conversations].filter(([, c]) => {
        if (c.state !== 'waiting') return false;
        if (!choices.has(c.skill)) choices.set(c.skill, this.choose(t, c.skill));
        return choices.get(c.skill) !== undefined;
      });
      if (servable.length === 0) break;
      servable.sort(([ia, a], [ib, b]) => b.priority - a.priority || a.requestedAt - b.requestedAt || (ia < ib ? -1 : ia > ib ? 1 : 0));
      const [id, c] = servable[0]!;
      out.push(this.assign(t, id, c, choices.get(c.skill)!, Math.max(time, c.requestedAt), true));
    }
    return out;
  }

  private assign(t: MTenant, id: string, c: MConversation, choice: { agentId: string; reason: RoutingDecision['reason'] }, at: number, queued: boolean): Expected {
    const a = t.agents.get(choice.agentId)!;
    a.load++;
    a.lastAssignedAt = a.lastAssignedAt === null ? at : Math.max(a.lastAssignedAt, at);
    c.state = 'active';
    c.agentId = choice.agentId;
    return { conversationId: id, agentId: choice.agentId, skill: c.skill, priority: c.priority, requestedAt: c.requestedAt, assignedAt: at, waitMs: at - c.requestedAt, queued, reason: choice.reason };
  }

  /** Candidates recomputed from the model: lowest load, then longest idle (never assigned first), then smallest id. */
  choose(t: MTenant, skill: string): { agentId: string; reason: RoutingDecision['reason'] } | undefined {
    const candidates = [...t.agents].filter(([, a]) => a.loggedIn && a.status === 'AVAILABLE' && a.skills.has(skill) && a.load < a.max);
    if (candidates.length === 0) return undefined;
    if (candidates.length === 1) return { agentId: candidates[0]![0], reason: 'ONLY_CANDIDATE' };
    const minLoad = Math.min(...candidates.map(([, a]) => a.load));
    const least = candidates.filter(([, a]) => a.load === minLoad);
    if (least.length === 1) return { agentId: least[0]![0], reason: 'LEAST_LOADED' };
    const idleSince = (a: MAgent) => a.lastAssignedAt ?? -Infinity;
    const earliest = Math.min(...least.map(([, a]) => idleSince(a)));
    const longest = least.filter(([, a]) => idleSince(a) === earliest);
    if (longest.length === 1) return { agentId: longest[0]![0], reason: 'LONGEST_IDLE' };
    const ids = longest.map(([id]) => id).sort();
    return { agentId: ids[0]!, reason: 'LOWEST_AGENT_ID' };
  }
}

// CapacityReplay (cli/demo/recompute/routing.ts) checks every decision against the replayed agents and conversations.

// ---------------------------------------------------------------------------------------------------------------

describe.each(['memory', 'rocksdb'] as const)('routing with generated traffic, %s stores', (backend) => {
  const steps = backend === 'memory' ? 4000 : 1500;

  it('routes by the policy at every decision, serves the queue when capacity frees, and ignores duplicates', async () => {
    const events = generateRoutingEvents({ seed: 20240917, tenants: 9, steps });
    expect(events.length).toBeGreaterThan(steps);
    const driver = newDriver(backend);
    const model = new ReferenceModel();
    const replay = new CapacityReplay();
    const seen = { 'agent-events': new Set<string>(), 'conversation-events': new Set<string>() };
    const duplicates = { 'agent-events': 0, 'conversation-events': 0 };
    let invalid = 0;
    const all: RoutingDecision[] = [];
    let servedSeveral = 0;

    for (const [i, e] of events.entries()) {
      const decisions = await pipe(driver, e);
      let expected: Expected[] = [];
      if (e.invalid) invalid++;
      else if (seen[e.topic].has(e.value.eventId)) {
        expect(e.duplicate).toBe(true);
        duplicates[e.topic]++;
      } else {
        seen[e.topic].add(e.value.eventId);
        expected = model.apply(e);
        replay.event(e);
      }
      // Exactly the decisions the rules demand, in order: the agent the policy picks (candidates recomputed by
      // the model), the reason, and for a waiting conversation the time of the event that freed capacity.
      expect(decisions.map(({ tenantId: _t, ...d }) => d), `event #${i} ${JSON.stringify(e.value)}`).toEqual(expected);
      for (const d of decisions) replay.decision(d);
      if (decisions.length > 1) servedSeveral++;
      all.push(...decisions);
    }
    expect(replay.violations).toEqual([]);

    // What the test pipes and reads as JSON is what the Avro contracts carry.
    const avroType = (topic: string) => avro.Type.forSchema(contractOf(topic).valueSchema as avro.Schema);
    const decisionType = avroType('routing-decisions');
    expect(all.filter((d) => !decisionType.isValid(d))).toEqual([]);
    const inputTypes = { 'agent-events': avroType('agent-events'), 'conversation-events': avroType('conversation-events') };
    expect(events.filter((e) => !e.invalid && !inputTypes[e.topic].isValid(e.value)).map((e) => e.value)).toEqual([]);

    // Each conversation decided at most once; waiting ones assigned at the freeing event's time.
    const ids = all.map((d) => `${d.tenantId}/${d.conversationId}`);
    expect(new Set(ids).size).toBe(ids.length);

    // The traffic exercised every rule (so the checks above checked something).
    const reasons = new Map<string, number>();
    for (const d of all) reasons.set(d.reason, (reasons.get(d.reason) ?? 0) + 1);
    for (const r of ['ONLY_CANDIDATE', 'LEAST_LOADED', 'LONGEST_IDLE', 'LOWEST_AGENT_ID']) expect(reasons.get(r) ?? 0, r).toBeGreaterThan(3);
    expect(all.filter((d) => d.queued && d.waitMs > 0).length).toBeGreaterThan(20);
    expect(all.filter((d) => !d.queued).length).toBeGreaterThan(100);
    expect(servedSeveral).toBeGreaterThan(0);
    expect(replay.maxLoadSeen).toBeGreaterThan(1);

    // Duplicates changed nothing (checked per event above) and are counted, per topic.
    let agentDuplicates = 0;
    let conversationDuplicates = 0;
    for (let p = 0; p < PARTITIONS; p++) {
      agentDuplicates += await duplicatesCounted(await driver.getStore(RoutingStores.agentEventIds, p));
      conversationDuplicates += await duplicatesCounted(await driver.getStore(RoutingStores.conversationEventIds, p));
    }
    expect(duplicates['agent-events']).toBeGreaterThan(10);
    expect(duplicates['conversation-events']).toBeGreaterThan(10);
    expect(agentDuplicates).toBe(duplicates['agent-events']);
    expect(conversationDuplicates).toBe(duplicates['conversation-events']);

    // Invalid records went to the dead-letter topic.
    const dlq = await driver.readOutput('test-app-dead-letters', Serdes.string(), Serdes.json());
    expect(invalid).toBeGreaterThan(0);
    expect(dlq).toHaveLength(invalid);
    expect(dlq.every((r) => r.headers['weir.dlq.stage']?.toString() === 'validation')).toBe(true);

    // The stores hold what the model holds: live agent loads, queue depth and active count per skill, counters.
    for (const [tenant, t] of model.tenants) {
      const { agents, stats } = await storesOf(driver, tenant);
      const stored = await agentsOfTenant(agents, tenant);
      expect(Object.fromEntries(stored.map((a) => [a.agentId, a.load]))).toEqual(Object.fromEntries([...t.agents].map(([id, a]) => [id, a.load])));
      const bySkill = new Map<string, SkillGauges>();
      for (const c of t.conversations.values()) {
        if (c.state === 'ended') continue;
        const g = bySkill.get(c.skill) ?? { waiting: 0, active: 0 };
        g[c.state === 'waiting' ? 'waiting' : 'active']++;
        bySkill.set(c.skill, g);
      }
      for (const [skill, g] of bySkill) expect(await skillGauges(stats, tenant, skill), `${tenant}/${skill}`).toEqual(g);
      expect(await routingCounters(stats, tenant)).toEqual(t.counters);
    }
    await driver.close();
  });
});

describe('routing state survives a restart', () => {
  it('a driver restored from the changelog continues exactly as an uninterrupted one', async () => {
    const events = generateRoutingEvents({ seed: 7, tenants: 5, steps: 1200 });
    const reference = newDriver('memory');
    const expected: RoutingDecision[] = [];
    for (const e of events) expected.push(...(await pipe(reference, e)));
    await reference.close();

    const half = Math.floor(events.length / 2);
    const first = newDriver('memory');
    const got: RoutingDecision[] = [];
    for (const e of events.slice(0, half)) got.push(...(await pipe(first, e)));
    await first.close();
    const second = newDriver('memory', first.log);
    await second.readOutput('routing-decisions', Serdes.string(), Serdes.json());
    for (const e of events.slice(half)) got.push(...(await pipe(second, e)));
    await second.close();
    expect(got.length).toBeGreaterThan(100);
    expect(got).toEqual(expected);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Targeted cases.

const T = 'acme';

class Script {
  private n = 0;
  constructor(readonly driver: TopologyTestDriver) {}

  agent(agentId: string, type: AgentEvent['type'], t: number, opts: { status?: AgentEvent['status']; skills?: string[]; max?: number } = {}): Promise<RoutingDecision[]> {
    const status = type === 'LOGOUT' ? null : (opts.status ?? 'AVAILABLE');
    const value: AgentEvent = { eventId: `a${this.n++}`, tenantId: T, agentId, type, status, skills: type === 'LOGOUT' ? [] : (opts.skills ?? ['tech']), maxConcurrent: type === 'LOGOUT' ? 0 : (opts.max ?? 1), eventTime: t };
    return pipe(this.driver, { topic: 'agent-events', key: T, value });
  }

  login(agentId: string, t: number, opts: { status?: AgentEvent['status']; skills?: string[]; max?: number } = {}) {
    return this.agent(agentId, 'LOGIN', t, opts);
  }

  status(agentId: string, t: number, opts: { status?: AgentEvent['status']; skills?: string[]; max?: number } = {}) {
    return this.agent(agentId, 'STATUS', t, opts);
  }

  request(conversationId: string, t: number, opts: { skill?: string; priority?: number; eventId?: string } = {}): Promise<RoutingDecision[]> {
    const value: ConversationEvent = { eventId: opts.eventId ?? `c${this.n++}`, tenantId: T, conversationId, type: 'REQUESTED', skill: opts.skill ?? 'tech', priority: opts.priority ?? 0, eventTime: t };
    return pipe(this.driver, { topic: 'conversation-events', key: T, value });
  }

  end(conversationId: string, t: number, opts: { eventId?: string } = {}): Promise<RoutingDecision[]> {
    const value: ConversationEvent = { eventId: opts.eventId ?? `c${this.n++}`, tenantId: T, conversationId, type: 'ENDED', skill: null, priority: null, eventTime: t };
    return pipe(this.driver, { topic: 'conversation-events', key: T, value });
  }

  async stores() {
    return storesOf(this.driver, T);
  }
}

const pick = (ds: RoutingDecision[]) => ds.map((d) => [d.conversationId, d.agentId, d.reason, d.queued, d.assignedAt, d.waitMs]);

describe('routing policy, case by case', () => {
  it('ONLY_CANDIDATE: the one eligible agent (skill, AVAILABLE, spare capacity) gets it', async () => {
    const s = new Script(newDriver('memory'));
    await s.login('a1', 10, { skills: ['billing'] });
    await s.login('a2', 11, { skills: ['tech'], status: 'AWAY' });
    await s.login('a3', 12, { skills: ['tech'], max: 0 });
    await s.login('a4', 13, { skills: ['tech', 'billing'] });
    expect(pick(await s.request('c1', 100))).toEqual([['c1', 'a4', 'ONLY_CANDIDATE', false, 100, 0]]);
  });

  it('LEAST_LOADED: the strictly lowest load wins, whatever the idle time or id', async () => {
    const s = new Script(newDriver('memory'));
    await s.login('a1', 10, { max: 3 });
    await s.login('a2', 10, { max: 3 });
    expect(pick(await s.request('c1', 100))).toEqual([['c1', 'a1', 'LOWEST_AGENT_ID', false, 100, 0]]);
    // a2 (load 0) beats a1 (load 1) although a1's id is smaller.
    expect(pick(await s.request('c2', 110))).toEqual([['c2', 'a2', 'LEAST_LOADED', false, 110, 0]]);
    expect(pick(await s.request('c3', 120))).toEqual([['c3', 'a1', 'LONGEST_IDLE', false, 120, 0]]); // both at load 1; a1 idle since 100
    expect((await s.end('c2', 130))).toEqual([]); // a2 back to load 0, a1 at 2
    expect(pick(await s.request('c4', 140))).toEqual([['c4', 'a2', 'LEAST_LOADED', false, 140, 0]]);
  });

  it('LONGEST_IDLE: on equal load the earliest last assignment wins; never assigned counts as idle the longest', async () => {
    const s = new Script(newDriver('memory'));
    await s.login('a1', 10);
    await s.login('a2', 10);
    await s.request('c1', 100); // a1 (tie on everything → smallest id)
    await s.request('c2', 200); // a2 (only candidate)
    await s.end('c2', 210);
    await s.end('c1', 220);
    // Both idle at load 0: a1 was last assigned at 100, a2 at 200 — a1 idle longer, though it ended later.
    expect(pick(await s.request('c3', 300))).toEqual([['c3', 'a1', 'LONGEST_IDLE', false, 300, 0]]);
    await s.end('c3', 310);
    // A newcomer never assigned beats both, despite the largest id.
    await s.login('z9', 320);
    expect(pick(await s.request('c4', 400))).toEqual([['c4', 'z9', 'LONGEST_IDLE', false, 400, 0]]);
  });

  it('LOWEST_AGENT_ID: on equal load and equal idle time the smallest agentId wins (also between never-assigned agents)', async () => {
    const s = new Script(newDriver('memory'));
    await s.login('b', 10, { max: 2 });
    await s.login('a10', 10, { max: 2 });
    await s.login('a2', 10, { max: 2 });
    // Never assigned, all three: string order of ids, 'a10' < 'a2' < 'b'.
    expect(pick(await s.request('c1', 100))).toEqual([['c1', 'a10', 'LOWEST_AGENT_ID', false, 100, 0]]);
    expect(pick(await s.request('c2', 100))).toEqual([['c2', 'a2', 'LOWEST_AGENT_ID', false, 100, 0]]);
    expect(pick(await s.request('c3', 100))).toEqual([['c3', 'b', 'LEAST_LOADED', false, 100, 0]]);
    // All at load 1, all last assigned at 100: smallest id again.
    expect(pick(await s.request('c4', 150))).toEqual([['c4', 'a10', 'LOWEST_AGENT_ID', false, 150, 0]]);
  });

  it('idle time counts from the latest assignment in event time, even when an earlier-stamped one is processed later', async () => {
    const s = new Script(newDriver('memory'));
    await s.login('a1', 10, { max: 2 });
    await s.request('c1', 500); // a1, last assignment 500
    await s.request('c2', 300); // a1 again, stamped 300: its last assignment stays 500
    await s.login('a2', 350, { max: 2 });
    expect(pick(await s.request('c3', 400))).toEqual([['c3', 'a2', 'ONLY_CANDIDATE', false, 400, 0]]);
    for (const [c, t] of [['c1', 410], ['c2', 420], ['c3', 430]] as const) await s.end(c, t);
    // Both at load 0: a2 (last 400) has been idle longer than a1 (last 500).
    expect(pick(await s.request('c4', 700))).toEqual([['c4', 'a2', 'LONGEST_IDLE', false, 700, 0]]);
  });

  it('serves the queue by priority, then request time, then conversationId, the moment capacity frees', async () => {
    const s = new Script(newDriver('memory'));
    await s.login('a1', 10, { max: 1 });
    await s.request('busy', 50);
    expect(await s.request('low', 100, { priority: 0 })).toEqual([]);
    expect(await s.request('late', 120, { priority: 5 })).toEqual([]);
    expect(await s.request('early', 110, { priority: 5 })).toEqual([]);
    expect(await s.request('b-same', 130, { priority: 1 })).toEqual([]);
    expect(await s.request('a-same', 130, { priority: 1 })).toEqual([]);
    const { stats } = await s.stores();
    expect(await skillGauges(stats, T, 'tech')).toEqual({ waiting: 5, active: 1 });
    // One slot frees per ENDED: each goes to the best waiting conversation, stamped with the ENDED's time.
    expect(pick(await s.end('busy', 200))).toEqual([['early', 'a1', 'ONLY_CANDIDATE', true, 200, 90]]);
    expect(pick(await s.end('early', 210))).toEqual([['late', 'a1', 'ONLY_CANDIDATE', true, 210, 90]]);
    expect(pick(await s.end('late', 220))).toEqual([['a-same', 'a1', 'ONLY_CANDIDATE', true, 220, 90]]);
    // Raising maxConcurrent frees two slots at once: two waiting conversations served by one event.
    expect(pick(await s.status('a1', 300, { max: 3 }))).toEqual([
      ['b-same', 'a1', 'ONLY_CANDIDATE', true, 300, 170],
      ['low', 'a1', 'ONLY_CANDIDATE', true, 300, 200],
    ]);
    expect(await skillGauges(stats, T, 'tech')).toEqual({ waiting: 0, active: 3 });
  });

  it('a waiting conversation goes to an agent logging in, turning AVAILABLE, or gaining the skill', async () => {
    const s = new Script(newDriver('memory'));
    await s.request('c1', 100, { skill: 'fr' });
    await s.request('c2', 101, { skill: 'fr' });
    await s.request('c3', 102, { skill: 'de' });
    expect(pick(await s.login('a1', 200, { skills: ['fr'], status: 'AWAY', max: 2 }))).toEqual([]);
    expect(pick(await s.status('a1', 300, { skills: ['fr'], max: 2 }))).toEqual([
      ['c1', 'a1', 'ONLY_CANDIDATE', true, 300, 200],
      ['c2', 'a1', 'ONLY_CANDIDATE', true, 300, 199],
    ]);
    expect(pick(await s.login('a2', 400, { skills: ['de'] }))).toEqual([['c3', 'a2', 'ONLY_CANDIDATE', true, 400, 298]]);
  });

  it('AWAY and LOGOUT keep current conversations until they end; nothing new goes to them, nothing is reassigned', async () => {
    const s = new Script(newDriver('memory'));
    await s.login('a1', 10, { max: 2 });
    await s.request('c1', 100);
    await s.request('c2', 101);
    expect(await s.status('a1', 150, { status: 'AWAY', max: 2 })).toEqual([]);
    const { agents } = await s.stores();
    expect((await agents.get(`${T}\u0000a1`))?.load).toBe(2);
    // A colleague logs in: a1's conversations stay with a1 (no reassignment), the new one goes to the colleague.
    expect(await s.login('a2', 160, { max: 1 })).toEqual([]);
    expect(pick(await s.request('c3', 170))).toEqual([['c3', 'a2', 'ONLY_CANDIDATE', false, 170, 0]]);
    // Everyone busy or AWAY: the request waits; a1's load dropping while AWAY routes nothing to it.
    expect(await s.request('c4', 180)).toEqual([]);
    expect(await s.end('c1', 190)).toEqual([]);
    expect((await agents.get(`${T}\u0000a1`))?.load).toBe(1);
    // LOGOUT keeps the last one too; its end lowers the load of the logged-out agent.
    expect(await s.agent('a1', 'LOGOUT', 200)).toEqual([]);
    expect((await agents.get(`${T}\u0000a1`))?.load).toBe(1);
    expect(await s.end('c2', 210)).toEqual([]);
    expect((await agents.get(`${T}\u0000a1`))?.load).toBe(0);
    // Back in session and AVAILABLE: the waiting conversation is served at the LOGIN's time.
    expect(pick(await s.login('a1', 300, { max: 1 }))).toEqual([['c4', 'a1', 'ONLY_CANDIDATE', true, 300, 120]]);
  });

  it('lowering capacity below the load keeps the conversations and takes no new ones until load drops below it', async () => {
    const s = new Script(newDriver('memory'));
    await s.login('a1', 10, { max: 3 });
    for (const c of ['c1', 'c2', 'c3']) await s.request(c, 100);
    expect(await s.status('a1', 110, { max: 1 })).toEqual([]);
    expect(await s.request('c4', 120)).toEqual([]);
    expect(await s.end('c1', 130)).toEqual([]); // load 2, max 1
    expect(await s.end('c2', 140)).toEqual([]); // load 1, max 1
    expect(pick(await s.end('c3', 150))).toEqual([['c4', 'a1', 'ONLY_CANDIDATE', true, 150, 30]]);
  });

  it('ENDED removes a waiting conversation from the queue; ENDED for an unknown conversation is ignored and counted', async () => {
    const s = new Script(newDriver('memory'));
    await s.request('gone', 100);
    await s.request('stays', 110);
    expect(await s.end('gone', 120)).toEqual([]);
    expect(await s.end('nobody', 125)).toEqual([]);
    expect(pick(await s.login('a1', 130))).toEqual([['stays', 'a1', 'ONLY_CANDIDATE', true, 130, 20]]);
    const { stats } = await s.stores();
    expect(await routingCounters(stats, T)).toEqual({ endedUnknown: 1 });
    expect(await skillGauges(stats, T, 'tech')).toEqual({ waiting: 0, active: 1 });
  });

  it('duplicates change nothing and are counted; a conversation is never decided twice', async () => {
    const driver = newDriver('memory');
    const s = new Script(driver);
    await s.login('a1', 10, { max: 5 });
    expect(pick(await s.request('c1', 100, { eventId: 'req-1' }))).toEqual([['c1', 'a1', 'ONLY_CANDIDATE', false, 100, 0]]);
    expect(await s.request('c1', 100, { eventId: 'req-1' })).toEqual([]); // a retried send: deduplicated
    expect(await s.request('c1', 105)).toEqual([]); // same conversation, another eventId: counted, ignored
    expect(await s.end('c1', 110, { eventId: 'end-1' })).toEqual([]);
    expect(await s.end('c1', 110, { eventId: 'end-1' })).toEqual([]); // duplicate ENDED: load must not drop twice
    expect(await s.request('c1', 120)).toEqual([]); // after its end: never routed again
    const { agents, stats } = await s.stores();
    expect((await agents.get(`${T}\u0000a1`))?.load).toBe(0);
    const p = partitionForKey(Buffer.from(T), PARTITIONS);
    expect(await duplicatesCounted(await driver.getStore(RoutingStores.conversationEventIds, p))).toBe(2);
    expect(await routingCounters(stats, T)).toEqual({ requestRepeated: 1, requestAfterEnd: 1 });
  });

  it('an ENDED seen before its REQUESTED (a misbehaving producer) keeps the conversation from ever being routed', async () => {
    const s = new Script(newDriver('memory'));
    await s.login('a1', 10);
    expect(await s.end('c1', 90)).toEqual([]);
    expect(await s.request('c1', 80)).toEqual([]);
    const { stats } = await s.stores();
    expect(await routingCounters(stats, T)).toEqual({ endedUnknown: 1, requestAfterEnd: 1 });
  });

  it('across the two topics out of order: capacity freed at an earlier event time stamps the request time, never a negative wait', async () => {
    const s = new Script(newDriver('memory'));
    expect(await s.request('c1', 500)).toEqual([]);
    // The agent's LOGIN happened at 400 but arrives after the request: assignedAt is the request time.
    expect(pick(await s.login('a1', 400))).toEqual([['c1', 'a1', 'ONLY_CANDIDATE', true, 500, 0]]);
  });

  it('STATUS or LOGOUT without a session is ignored and counted', async () => {
    const s = new Script(newDriver('memory'));
    await s.request('c1', 100);
    expect(await s.status('a1', 110)).toEqual([]);
    expect(await s.agent('a1', 'LOGOUT', 120)).toEqual([]);
    const { stats, agents } = await s.stores();
    expect(await agents.get(`${T}\u0000a1`)).toBeUndefined();
    expect(await routingCounters(stats, T)).toEqual({ statusWhileLoggedOut: 1, logoutWhileLoggedOut: 1 });
  });

  it('forgets an ended conversation id once stream time passes the retention', async () => {
    const topology = routingTopology({ serdes, backend: 'memory', partitions: PARTITIONS, endedRetentionMs: 10_000, dedupeRetentionMs: 10_000 });
    const driver = new TopologyTestDriver(topology, { defaultPartitions: PARTITIONS });
    const s = new Script(driver);
    await s.login('a1', 1_000, { max: 5 });
    await s.request('c1', 2_000);
    await s.end('c1', 3_000);
    await s.end('ghost', 3_500);
    const p = partitionForKey(Buffer.from(T), PARTITIONS);
    const conversations = await driver.getStore<string, unknown>(RoutingStores.conversations, p);
    expect(await conversations.get(`${T}\u0000c1`)).toEqual({ state: 'ENDED', endedAt: 3_000 });
    expect(await s.request('c1', 12_000)).toEqual([]); // within the retention: still refused
    // The sweep runs every 60 s of stream time: at 61,000 both tombstones (3,000 and 3,500) are past the retention.
    await s.agent('a1', 'STATUS', 61_000, { max: 5 });
    expect(await conversations.get(`${T}\u0000c1`)).toBeUndefined();
    expect(await conversations.get(`${T}\u0000ghost`)).toBeUndefined();
    const expiry = await driver.getStore<string, number>(RoutingStores.endedExpiry, p);
    const left: string[] = [];
    for await (const { key } of expiry.all()) left.push(key);
    expect(left).toEqual([STREAM_TIME_KEY]); // every expiry entry gone; only the processor's stream time is left
    expect(await expiry.get(STREAM_TIME_KEY)).toBe(61_000);
  });

  it('an ended conversation is forgotten by the retention rule itself: before any sweep, and after a restart', async () => {
    const topology = routingTopology({ serdes, backend: 'memory', partitions: PARTITIONS, endedRetentionMs: 10_000, dedupeRetentionMs: 10_000 });
    const first = new Script(new TopologyTestDriver(topology, { defaultPartitions: PARTITIONS }));
    await first.login('a1', 1_000, { max: 5 });
    await first.request('c1', 2_000);
    await first.end('c1', 3_000);
    await first.driver.close();
    // Local state gone: the stores and this processor's stream time come back from the changelogs; the task's own
    // stream time and its sweep schedule start over (the next sweep would be at 60,000).
    const second = new Script(new TopologyTestDriver(topology, { defaultPartitions: PARTITIONS, log: first.driver.log }));
    await second.driver.readOutput('routing-decisions', Serdes.string(), Serdes.json());
    expect(await second.request('c1', 12_000, { eventId: 'again-1' })).toEqual([]); // 3,000 >= 12,000 - 10,000: remembered
    const decided = await second.request('c1', 13_100, { eventId: 'again-2' }); // 3,000 < 13,100 - 10,000: forgotten
    expect(decided.map((d) => [d.conversationId, d.agentId])).toEqual([['c1', 'a1']]);
    const { stats } = await second.stores();
    expect(await routingCounters(stats, T)).toEqual({ requestAfterEnd: 1 });
    await second.driver.close();
  });

  it('sends invalid records to the dead-letter topic with the reason', async () => {
    const driver = newDriver('memory');
    const bad: Input[] = [
      { topic: 'agent-events', key: T, value: { eventId: 'x1', tenantId: T, agentId: 'a1', type: 'LOGOUT', status: 'AWAY', skills: [], maxConcurrent: 0, eventTime: 1 } },
      { topic: 'agent-events', key: T, value: { eventId: 'x2', tenantId: T, agentId: 'a1', type: 'LOGIN', status: null, skills: ['tech'], maxConcurrent: 1, eventTime: 1 } },
      { topic: 'conversation-events', key: T, value: { eventId: 'x3', tenantId: T, conversationId: 'c1', type: 'REQUESTED', skill: null, priority: 1, eventTime: 1 } },
      { topic: 'conversation-events', key: T, value: { eventId: 'x4', tenantId: T, conversationId: 'c1', type: 'REQUESTED', skill: 'tech', priority: null, eventTime: 1 } },
      { topic: 'conversation-events', key: T, value: { eventId: 'x5', tenantId: T, conversationId: 'c1', type: 'ENDED', skill: 'tech', priority: null, eventTime: 1 } },
      { topic: 'conversation-events', key: T, value: { eventId: 'x6', tenantId: T, conversationId: 'c1', type: 'ENDED', skill: null, priority: 0, eventTime: 1 } },
      { topic: 'conversation-events', key: 'other', value: { eventId: 'x7', tenantId: T, conversationId: 'c1', type: 'ENDED', skill: null, priority: null, eventTime: 1 } },
    ];
    for (const e of bad) expect(await pipe(driver, e)).toEqual([]);
    const dlq = await driver.readOutput('test-app-dead-letters', Serdes.string(), Serdes.json());
    expect(dlq.map((r) => r.headers['weir.dlq.error']?.toString())).toEqual([
      'status must be null on LOGOUT, got "AWAY"',
      'status is required on LOGIN',
      'skill is required on REQUESTED',
      'priority is required on REQUESTED',
      'skill must be null on ENDED, got "tech"',
      'priority must be null on ENDED, got 0',
      'the key "other" differs from tenantId "acme"',
    ]);
  });

  it('keeps tenants apart: one tenant’s agents never serve another’s conversations', async () => {
    const driver = newDriver('memory');
    const req = (tenant: string, id: string): Input => ({ topic: 'conversation-events', key: tenant, value: { eventId: `${tenant}${id}`, tenantId: tenant, conversationId: id, type: 'REQUESTED', skill: 'tech', priority: 0, eventTime: 100 } });
    const login = (tenant: string): Input => ({ topic: 'agent-events', key: tenant, value: { eventId: `${tenant}-login`, tenantId: tenant, agentId: 'a1', type: 'LOGIN', status: 'AVAILABLE', skills: ['tech'], maxConcurrent: 1, eventTime: 50 } });
    await pipe(driver, login('t1'));
    expect(await pipe(driver, req('t2', 'c1'))).toEqual([]);
    expect((await pipe(driver, req('t1', 'c1'))).map((d) => [d.tenantId, d.agentId])).toEqual([['t1', 'a1']]);
    expect((await pipe(driver, login('t2'))).map((d) => [d.tenantId, d.conversationId])).toEqual([['t2', 'c1']]);
  });
});
