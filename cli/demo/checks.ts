/**
 * The summary's checks: what landed in Postgres, Redis and the output topics, against what the demo sent, each
 * recomputed independently of processors/ (cli/demo/recompute/):
 * - inputs: the input topics hold exactly what the demo sent (no other process wrote to the shared catalog topics);
 * - ledger: debits = credits per currency and per trade version (postings and reversals apart), exact decimals in
 *   SQL, and as many entries as the trade events post;
 * - positions: every position in Postgres and in Redis equals a FIFO recomputation from the trade events sent;
 * - payments: every paymentId has exactly one current reconciliation, the one the payments and settlements sent call for;
 * - routing: no conversation assigned twice (the routing-decisions topic), no decision to an agent that was not
 *   eligible or at capacity (replayed in the order the application processed its inputs), waits and utilisation;
 * - routing live state: agent load and queue depth in Redis equal the end state recomputed from inputs and decisions;
 * - dead letters: the dead-letter topic of each application holds exactly the malformed records sent;
 * - duplicates: the dedupe stores counted exactly the duplicates sent. The count is read from the stores'
 *   changelogs (key `c:duplicates`, last committed value per partition): that is the committed store state, exact
 *   under exactly-once; the `weir_processor_events_total{name="duplicates"}` metric counts as records are
 *   processed, so a transaction aborted and processed again would count twice.
 */
import type { Admin, Kafka } from 'kafkajs';
import type pg from 'pg';
import type { Redis } from 'ioredis';
import { PartitionReader, type RawMessage } from '../../runtime/partition-reader.js';
import { Serdes } from '../../runtime/serde.js';
import type { SerdeFor } from '../../topologies/index.js';
import { formatDecimal } from '../../schemas/decimal.js';
import { Scale, type RoutingDecision } from '../../schemas/types.js';
import { quoteIdent } from '../../sinks/postgres/writers.js';
import { liveStateKeys } from '../../sinks/redis/routing-live-state.js';
import type { PositionJson } from '../../sinks/redis/writers.js';
import { expectedLedgerEntries, finalLiveSets, modelPosition } from './recompute/trades.js';
import { expectedReconciliations } from './recompute/payments.js';
import { agentUtilisation, CapacityReplay, routingEndState, type RoutingInput } from './recompute/routing.js';
import type { RoutingTrace } from './routing-trace.js';
import type { DemoRecord, DemoStream } from './stream.js';
import { APP_NAMES, type DemoPlan } from './plan.js';

export type CheckStatus = 'pass' | 'fail' | 'skip';

export interface Check {
  name: string;
  status: CheckStatus;
  /** one line: what was checked, with its counts */
  summary: string;
  /** further lines: figures, or what failed */
  details: string[];
}

export interface CheckInputs {
  plan: DemoPlan;
  stream: DemoStream;
  /** records sent after the stream (the closing payments) */
  closing: readonly DemoRecord[];
  /**
   * The routing application's processing order, when its workers run in this process (the main job); null when they
   * run in processes of their own (the chaos suite), which leaves the capacity replay out of the routing check.
   */
  trace: RoutingTrace | null;
  /** transactions the routing worker aborted (its trace is then not exact) */
  routingAborts: number;
  kafka: Kafka;
  /** the topics are read through this reader when given (left open), else through one of its own on `kafka` */
  reader?: PartitionReader;
  admin: Admin;
  pg: pg.Client;
  redis: Redis;
  serdeFor: SerdeFor;
}

/** What the summary shows besides the checks (and "where to look next" uses). */
export interface Facts {
  sampleTenant?: string;
  sampleAccount?: string;
  positions: number;
  ledgerEntries: number;
  decisions: number;
  reconciliations: number;
}

const n = (x: number | bigint) => x.toLocaleString('en-US');
const MAX_LISTED = 5;

/** The checks, the summary's facts, and the routing decisions of the topic (decoded once, for other checks too). */
export async function runChecks(inp: CheckInputs): Promise<{ checks: Check[]; facts: Facts; decisions: RoutingDecision[] }> {
  const reader = inp.reader ?? new PartitionReader(inp.kafka);
  try {
    const read = (topic: string) => readTopic(inp.admin, reader, topic);
    const decisions = await decodeAll<RoutingDecision>(await read('routing-decisions'), inp.serdeFor('routing-decisions'), 'routing-decisions');
    const facts: Facts = { positions: 0, ledgerEntries: 0, decisions: decisions.length, reconciliations: 0 };
    const checks: Check[] = [];
    checks.push(await inputsCheck(inp));
    checks.push(await ledgerCheck(inp, facts));
    checks.push(await positionsCheck(inp, facts));
    checks.push(await paymentsCheck(inp, facts));
    checks.push(await routingCheck(inp, decisions, facts));
    checks.push(await liveStateCheck(inp, decisions));
    checks.push(await deadLetterCheck(inp, read));
    checks.push(await duplicatesCheck(inp, read));
    return { checks, facts, decisions };
  } finally {
    if (!inp.reader) await reader.close().catch(() => undefined);
  }
}

type Read = (topic: string) => Promise<Array<RawMessage & { partition: number }>>;

/**
 * Every committed record of a topic (read_committed, without a consumer group), partition by partition. Its writers
 * are done, but their last commit may not have reached every partition yet: the read waits for that (`settleMs`).
 */
export async function readTopic(admin: Admin, reader: PartitionReader, topic: string): Promise<Array<RawMessage & { partition: number }>> {
  const out: Array<RawMessage & { partition: number }> = [];
  for (const { partition } of await admin.fetchTopicOffsets(topic)) {
    await reader.read(topic, partition, null, (messages) => void out.push(...messages.map((m) => ({ ...m, partition }))), { settleMs: 30_000 });
  }
  return out;
}

export async function decodeAll<T>(messages: readonly RawMessage[], serde: { deserialize(b: Buffer, ctx: { topic: string }): T | Promise<T> }, topic: string): Promise<T[]> {
  const out: T[] = [];
  for (const m of messages) if (m.value) out.push(await serde.deserialize(m.value, { topic }));
  return out;
}

/** A check from the problems found: passed when there are none; the first few problems as its details otherwise. */
export function check(name: string, problems: string[], summary: string, details: string[] = []): Check {
  return {
    name,
    status: problems.length === 0 ? 'pass' : 'fail',
    summary,
    details: problems.length === 0 ? details : [...problems.slice(0, MAX_LISTED), ...(problems.length > MAX_LISTED ? [`… and ${n(problems.length - MAX_LISTED)} more`] : [])],
  };
}

// ---- inputs ----------------------------------------------------------------------------------------------------

/**
 * The input topics hold exactly what the demo sent (its producer is not transactional: one offset per record).
 * The topic names are the catalog's, shared by every weir process on the broker: records someone else produced
 * during the run would make every other check compare against the wrong stream, so this says so first.
 */
async function inputsCheck(inp: CheckInputs): Promise<Check> {
  const sent = new Map<string, number>();
  for (const r of inp.stream.records) sent.set(r.topic, (sent.get(r.topic) ?? 0) + 1);
  for (const r of inp.closing) sent.set(r.topic, (sent.get(r.topic) ?? 0) + 1);
  const problems: string[] = [];
  const parts: string[] = [];
  for (const app of APP_NAMES) {
    for (const topic of inp.plan.apps[app].inputTopics) {
      const held = (await inp.admin.fetchTopicOffsets(topic)).reduce((s, o) => s + Number(o.high) - Number(o.low), 0);
      const want = sent.get(topic) ?? 0;
      if (held !== want) {
        problems.push(`${topic} holds ${n(held)} records, the demo sent ${n(want)}: another process wrote to the catalog topics during the run, so the other checks compare against the wrong stream`);
      }
      parts.push(`${topic} ${n(held)}`);
    }
  }
  return check('inputs as sent', problems, `the input topics hold exactly the records the demo sent: ${parts.join(', ')}`);
}

// ---- trades ----------------------------------------------------------------------------------------------------

async function ledgerCheck(inp: CheckInputs, facts: Facts): Promise<Check> {
  const t = `${quoteIdent(inp.plan.schema)}.ledger_entries`;
  const perCurrency = await inp.pg.query<{ currency: string; entries: string; debits: string; credits: string }>(
    `SELECT currency, count(*) AS entries,
            coalesce(sum(amount) FILTER (WHERE side = 'DEBIT'), 0)::text AS debits,
            coalesce(sum(amount) FILTER (WHERE side = 'CREDIT'), 0)::text AS credits
       FROM ${t} GROUP BY currency ORDER BY currency`,
  );
  const perVersion = await inp.pg.query<{ groups: string; unbalanced: string; sample: string | null }>(
    `SELECT count(*) AS groups, count(*) FILTER (WHERE net <> 0) AS unbalanced,
            min(account_id || ' ' || trade_id || ' v' || trade_version || CASE WHEN reversal THEN ' reversal' ELSE ' posting' END) FILTER (WHERE net <> 0) AS sample
       FROM (SELECT account_id, trade_id, trade_version, reverses IS NOT NULL AS reversal,
                    sum(CASE WHEN side = 'DEBIT' THEN amount ELSE -amount END) AS net
               FROM ${t} GROUP BY 1, 2, 3, 4) g`,
  );
  const entries = perCurrency.rows.reduce((s, r) => s + Number(r.entries), 0);
  facts.ledgerEntries = entries;
  const expected = expectedLedgerEntries(inp.stream.valid.trades);
  const problems: string[] = [];
  for (const r of perCurrency.rows) if (r.debits !== r.credits) problems.push(`${r.currency}: debits ${r.debits} ≠ credits ${r.credits}`);
  const v = perVersion.rows[0]!;
  if (Number(v.unbalanced) > 0) problems.push(`${n(Number(v.unbalanced))} trade versions do not balance, e.g. ${v.sample}`);
  if (entries !== expected) problems.push(`${n(entries)} entries, but the ${n(inp.stream.valid.trades.length)} trade events post ${n(expected)}`);
  if (entries === 0) problems.push('no ledger entries landed');
  return check(
    'ledger balanced',
    problems,
    `${n(entries)} entries, as the trade events post; debits = credits in each of ${perCurrency.rows.length} currencies and ${n(Number(v.groups))} trade versions (postings and reversals apart)`,
    perCurrency.rows.map((r) => `${r.currency}: ${n(Number(r.entries))} entries, debits = credits = ${r.debits}`),
  );
}

interface PositionFigures {
  quantity: string;
  costBasis: string;
  averageCost: string | null;
  realisedPnl: string;
  openLots: number;
  liveTrades: number;
}

async function positionsCheck(inp: CheckInputs, facts: Facts): Promise<Check> {
  const { live } = finalLiveSets(inp.stream.valid.trades);
  const expected = new Map<string, PositionFigures>();
  for (const [key, trades] of live) {
    const m = modelPosition(trades);
    expected.set(key, {
      quantity: formatDecimal(m.quantity, Scale.quantity),
      costBasis: formatDecimal(m.costBasis, Scale.notional),
      averageCost: m.averageCost === null ? null : formatDecimal(m.averageCost, Scale.averageCost),
      realisedPnl: formatDecimal(m.realisedPnl, Scale.notional),
      openLots: m.openLots,
      liveTrades: m.liveTrades,
    });
  }
  const rows = await inp.pg.query<{
    account_id: string;
    instrument: string;
    quantity: string;
    cost_basis: string;
    average_cost: string | null;
    realised_pnl: string;
    open_lots: number;
    live_trades: number;
  }>(`SELECT account_id, instrument, quantity::text, cost_basis::text, average_cost::text, realised_pnl::text, open_lots, live_trades FROM ${quoteIdent(inp.plan.schema)}.positions`);
  const inPostgres = new Map<string, PositionFigures>(
    rows.rows.map((r) => [
      `${r.account_id}|${r.instrument}`,
      { quantity: r.quantity, costBasis: r.cost_basis, averageCost: r.average_cost, realisedPnl: r.realised_pnl, openLots: r.open_lots, liveTrades: r.live_trades },
    ]),
  );
  const inRedis = new Map<string, PositionFigures>();
  const accounts = new Set([...expected.keys()].map((k) => k.split('|')[0]!));
  for (const account of accounts) {
    for (const [instrument, text] of Object.entries(await inp.redis.hgetall(`${inp.plan.redisPrefix}:position:${account}`))) {
      const p = JSON.parse(text) as PositionJson;
      inRedis.set(`${account}|${instrument}`, { quantity: p.quantity, costBasis: p.costBasis, averageCost: p.averageCost, realisedPnl: p.realisedPnl, openLots: p.openLots, liveTrades: p.liveTrades });
    }
  }
  facts.positions = inPostgres.size;
  facts.sampleAccount = [...accounts].sort()[0];
  const problems = [...comparePositions('Postgres', expected, inPostgres), ...comparePositions('Redis', expected, inRedis)];
  if (expected.size === 0) problems.push('no trade events were sent');
  const shorts = [...expected.values()].filter((p) => p.quantity.startsWith('-')).length;
  const flat = [...expected.values()].filter((p) => /^0\.0+$/.test(p.quantity)).length;
  return check(
    'positions recomputed',
    problems,
    `${n(inPostgres.size)} positions in Postgres and ${n(inRedis.size)} in Redis equal a FIFO recomputation from the ${n(inp.stream.valid.trades.length)} trade events sent`,
    [`${n(expected.size - shorts - flat)} long, ${n(shorts)} short, ${n(flat)} flat; realised P&L, cost basis and average cost exact to the last decimal`],
  );
}

function comparePositions(where: string, expected: Map<string, PositionFigures>, got: Map<string, PositionFigures>): string[] {
  const problems: string[] = [];
  for (const [key, want] of expected) {
    const have = got.get(key);
    if (!have) problems.push(`${where}: position ${key} is missing`);
    else if (JSON.stringify(have) !== JSON.stringify(want)) problems.push(`${where}: position ${key} is ${JSON.stringify(have)}, recomputed ${JSON.stringify(want)}`);
  }
  for (const key of got.keys()) if (!expected.has(key)) problems.push(`${where}: position ${key} was never traded`);
  return problems;
}

// ---- payments --------------------------------------------------------------------------------------------------

async function paymentsCheck(inp: CheckInputs, facts: Facts): Promise<Check> {
  const expected = expectedReconciliations(inp.stream.valid.payments);
  const rows = await inp.pg.query<{ payment_id: string; status: string; difference: string | null; expected_amount: string | null; settled_amount: string | null }>(
    `SELECT payment_id, status, difference::text, expected_amount::text, settled_amount::text FROM ${quoteIdent(inp.plan.schema)}.reconciliations`,
  );
  facts.reconciliations = rows.rows.length;
  const got = new Map(rows.rows.map((r) => [r.payment_id, r]));
  const problems: string[] = [];
  const byStatus = new Map<string, number>();
  const dec = (v: bigint | null) => (v === null ? null : formatDecimal(v, Scale.money));
  for (const [paymentId, want] of expected) {
    const have = got.get(paymentId);
    byStatus.set(want.status, (byStatus.get(want.status) ?? 0) + 1);
    const wantRow = { status: want.status, difference: dec(want.difference), expected: dec(want.expectedAmount), settled: dec(want.settledAmount) };
    if (!have) {
      problems.push(`${paymentId} has no reconciliation (expected ${want.status})`);
      continue;
    }
    const haveRow = { status: have.status, difference: have.difference, expected: have.expected_amount, settled: have.settled_amount };
    if (JSON.stringify(haveRow) !== JSON.stringify(wantRow)) problems.push(`${paymentId}: ${JSON.stringify(haveRow)}, recomputed ${JSON.stringify(wantRow)}`);
  }
  for (const id of got.keys()) if (!expected.has(id)) problems.push(`${id} has a reconciliation but was never sent`);
  const payments = new Set(inp.stream.valid.payments.filter((r) => r.topic === 'payments').map((r) => r.value.paymentId)).size;
  return check(
    'every payment reconciled',
    problems,
    `each of ${n(expected.size)} paymentIds (${n(payments)} paid) has exactly one current reconciliation, the one its payment and settlement call for`,
    [[...byStatus].sort().map(([s, c]) => `${s} ${n(c)}`).join(', ')],
  );
}

// ---- routing ---------------------------------------------------------------------------------------------------

async function routingCheck(inp: CheckInputs, decisions: readonly RoutingDecision[], facts: Facts): Promise<Check> {
  const problems: string[] = [];
  const seen = new Map<string, number>();
  for (const d of decisions) {
    const k = `${d.tenantId}/${d.conversationId}`;
    seen.set(k, (seen.get(k) ?? 0) + 1);
  }
  const twice = [...seen].filter(([, c]) => c > 1);
  for (const [k, c] of twice) problems.push(`conversation ${k} was assigned ${c} times`);
  if (decisions.length === 0) problems.push('no routing decisions were made');

  const stats = await inp.pg.query<{ n: string; avg: string | null; p95: string | null; queued: string; max: string | null }>(
    `SELECT count(*) AS n, avg(wait_ms)::text AS avg, percentile_cont(0.95) WITHIN GROUP (ORDER BY wait_ms)::text AS p95,
            count(*) FILTER (WHERE queued) AS queued, max(wait_ms)::text AS max
       FROM ${quoteIdent(inp.plan.schema)}.routing_decisions`,
  );
  const s = stats.rows[0]!;
  if (Number(s.n) !== seen.size) problems.push(`Postgres holds ${n(Number(s.n))} decisions, the topic ${n(seen.size)} conversations`);

  // capacity and eligibility at every decision, in processing order
  let capacity: string;
  let capacityStatus: CheckStatus = 'pass';
  const inexact = inp.trace === null ? 'the routing workers ran in processes of their own, which record no processing order' : traceProblem(inp, inp.trace);
  if (inp.trace === null) {
    capacity = `capacity replay not run: ${inexact}`;
  } else if (inexact) {
    capacity = `capacity replay not checked: ${inexact}`;
    capacityStatus = 'skip';
  } else {
    const replay = new CapacityReplay();
    const applied = new Set<string>();
    for (const e of inp.trace.entries) {
      if (e.kind === 'out') {
        replay.decision(e.value);
        continue;
      }
      const id = `${e.topic}|${e.value.eventId}`;
      if (inp.stream.invalidEventIds.has(e.value.eventId) || applied.has(id)) continue;
      applied.add(id);
      replay.event(e as RoutingInput);
    }
    for (const v of replay.violations) problems.push(v);
    if (replay.decisions !== decisions.length) {
      problems.push(`the trace holds ${n(replay.decisions)} decisions, the topic ${n(decisions.length)}`);
    }
    capacity = `no agent above capacity or ineligible at any of ${n(replay.decisions)} decisions (replayed in processing order; busiest agent held ${replay.maxLoadSeen})`;
  }

  const inputs = inp.stream.valid.routing;
  const until = inputs.reduce((m, e) => Math.max(m, e.value.eventTime), 0);
  const { busyMs, capacityMs } = agentUtilisation(inputs, decisions, until);
  const tenants = new Set(decisions.map((d) => d.tenantId));
  facts.sampleTenant = [...tenants].sort()[0];
  const secs = (ms: string | null) => (ms === null ? '–' : `${(Number(ms) / 1000).toFixed(1)} s`);
  const result = check(
    'routing',
    problems,
    `${n(decisions.length)} conversations assigned in ${n(tenants.size)} tenants, none twice; ${capacity}`,
    [
      `wait: average ${secs(s.avg)}, p95 ${secs(s.p95)}, longest ${secs(s.max)}; ${n(Number(s.queued))} assigned from the queue, ${n(decisions.length - Number(s.queued))} at once`,
      `agent utilisation ${capacityMs > 0 ? ((100 * busyMs) / capacityMs).toFixed(1) : '0'} % (handled conversation-time / logged-in capacity-time, event time)`,
    ],
  );
  if (result.status === 'pass' && capacityStatus === 'skip') result.status = 'skip';
  return result;
}

/**
 * Why the routing trace is not the exact processing order, if it is not: each decodable record sent must have been
 * decoded exactly as often as it was sent. More means a task processed records again (a transaction aborted, or
 * the task moved and restarted from its last commit); then the trace also holds decisions that were rolled back.
 */
function traceProblem(inp: CheckInputs, trace: RoutingTrace): string | undefined {
  const sent = new Map<string, number>();
  for (const r of inp.stream.records) {
    if (r.app !== 'routing' || r.corrupt) continue;
    const k = `${r.topic}|${(r.value as { eventId: string }).eventId}`;
    sent.set(k, (sent.get(k) ?? 0) + 1);
  }
  const decoded = new Map<string, number>();
  for (const e of trace.entries) {
    if (e.kind !== 'in') continue;
    const k = `${e.topic}|${e.value.eventId}`;
    decoded.set(k, (decoded.get(k) ?? 0) + 1);
  }
  let again = 0;
  let missing = 0;
  for (const [k, c] of sent) {
    const d = decoded.get(k) ?? 0;
    if (d > c) again++;
    else if (d < c) missing++;
  }
  if (inp.routingAborts > 0 || again > 0) {
    return `the routing worker processed ${again} records again (${inp.routingAborts} aborted transactions), so the order it recorded is not exact`;
  }
  if (missing > 0) return `${missing} records sent were never decoded by the routing worker`;
  return undefined;
}

async function liveStateCheck(inp: CheckInputs, decisions: readonly RoutingDecision[]): Promise<Check> {
  const want = routingEndState(inp.stream.valid.routing, decisions);
  const problems: string[] = [];
  const prefix = inp.plan.redisPrefix;
  let agents = 0;
  let active = 0;
  for (const [tenant, loads] of want.agentLoad) {
    const have = await inp.redis.hgetall(liveStateKeys.agentLoad(prefix, tenant));
    for (const [agent, load] of loads) {
      agents++;
      active += load;
      if (have[agent] !== String(load)) problems.push(`agent-load ${tenant}/${agent} is ${have[agent] ?? 'missing'}, recomputed ${load}`);
    }
    for (const agent of Object.keys(have)) if (!loads.has(agent)) problems.push(`agent-load ${tenant}/${agent} names an agent that never logged in`);
  }
  let waiting = 0;
  let skills = 0;
  const tenants = new Set([...want.agentLoad.keys(), ...want.queueDepth.keys(), ...decisions.map((d) => d.tenantId)]);
  for (const tenant of tenants) {
    const depths = want.queueDepth.get(tenant) ?? new Map<string, number>();
    const have = await inp.redis.hgetall(liveStateKeys.queueDepth(prefix, tenant));
    for (const [skill, depth] of depths) {
      skills++;
      waiting += depth;
      if (have[skill] !== String(depth)) problems.push(`queue-depth ${tenant}/${skill} is ${have[skill] ?? 'missing'}, recomputed ${depth}`);
    }
    for (const [skill, text] of Object.entries(have)) if (!depths.has(skill) && text !== '0') problems.push(`queue-depth ${tenant}/${skill} is ${text}, recomputed 0`);
  }
  return check(
    'routing live state in Redis',
    problems,
    `agent load of ${n(agents)} agents and queue depth per tenant and skill equal the end state recomputed from inputs and decisions`,
    [`${n(active)} conversations still active; ${n(waiting)} waiting in ${n(skills)} tenant queues (skill) — no agent with the skill free`],
  );
}

// ---- dead letters and duplicates -------------------------------------------------------------------------------

async function deadLetterCheck(inp: CheckInputs, read: Read): Promise<Check> {
  const problems: string[] = [];
  const parts: string[] = [];
  for (const app of APP_NAMES) {
    const dlq = await read(inp.plan.apps[app].deadLetterTopic);
    const stages = new Map<string, number>();
    for (const m of dlq) {
      const h = m.headers?.['weir.dlq.stage'];
      const stage = h === undefined ? '?' : String(Array.isArray(h) ? h[0] : h);
      stages.set(stage, (stages.get(stage) ?? 0) + 1);
    }
    const s = inp.stream.stats[app];
    const undecodable = stages.get('deserialization') ?? 0;
    const invalid = stages.get('validation') ?? 0;
    if (dlq.length !== s.malformed) problems.push(`${app}: ${n(dlq.length)} dead letters, ${n(s.malformed)} malformed records sent`);
    else if (undecodable !== s.undecodable || invalid !== s.malformed - s.undecodable) {
      problems.push(`${app}: ${undecodable} undecodable + ${invalid} invalid dead letters, sent ${s.undecodable} + ${s.malformed - s.undecodable}`);
    }
    parts.push(`${app} ${n(dlq.length)} (${undecodable} not Avro, ${invalid} invalid)`);
  }
  return check('dead letters', problems, `${parts.join(', ')} = the malformed records sent`);
}

async function duplicatesCheck(inp: CheckInputs, read: Read): Promise<Check> {
  const problems: string[] = [];
  const parts: string[] = [];
  const json = Serdes.json<number>();
  for (const app of APP_NAMES) {
    let counted = 0;
    for (const topic of inp.plan.apps[app].dedupeChangelogs) {
      // the last committed value of `c:duplicates` per partition (a changelog is a sequence of overwrites per key)
      const last = new Map<number, number>();
      for (const m of await read(topic)) {
        if (m.key?.toString('utf8') === 'c:duplicates') last.set(m.partition, m.value ? json.deserialize(m.value) : 0);
      }
      for (const v of last.values()) counted += v;
    }
    const sent = inp.stream.stats[app].duplicates;
    if (counted !== sent) problems.push(`${app}: the dedupe stores counted ${n(counted)}, ${n(sent)} duplicates were sent`);
    parts.push(`${app} ${n(counted)}`);
  }
  return check('duplicates counted', problems, `${parts.join(', ')} counted by the dedupe stores = the duplicates sent`, [
    'read from the dedupe stores’ changelogs (key c:duplicates, last committed value per partition): exact, where the',
    'weir_processor_events_total{name="duplicates"} metric counts as records are processed (twice after an aborted transaction)',
  ]);
}
