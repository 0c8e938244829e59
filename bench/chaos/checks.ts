/**
 * The chaos run's checks beyond the main job's (cli/demo/checks.ts, which compare every table and key with a
 * recomputation from the input, and the dead-letter topics with the malformed records sent):
 * - outputs exactly once: the output topics themselves (read_committed) hold no record twice — every ledger entry
 *   (account and entry id: an entry id is unique inside its account only) once, every position update once per
 *   (position, trade version that caused it), no reconciliation result twice for a paymentId, no routing decision
 *   twice for a conversation (tenant and conversation id). The tables upsert by those keys, so a doubled output
 *   would not show there: it is caught here, where a processing that was applied twice would leave it;
 * - sinks equal the topics: every ledger entry and routing decision of the topics is in Postgres with the same
 *   figures and nothing else is, every routing decision is in Redis with the same figures and nothing else is;
 * - faults injected: each kind of fault happened (so a green run is not a quiet one);
 * - no process exited on its own: only the members this run killed went down.
 */
import type { Admin } from 'kafkajs';
import type pg from 'pg';
import type { Redis } from 'ioredis';
import { keysStartingWith } from '../../sinks/redis/keys.js';
import type { PartitionReader } from '../../runtime/partition-reader.js';
import type { SerdeFor } from '../../topologies/index.js';
import { formatDecimal } from '../../schemas/decimal.js';
import { Scale, type LedgerEntry, type Position, type Reconciliation, type RoutingDecision } from '../../schemas/types.js';
import { quoteIdent } from '../../sinks/postgres/writers.js';
import { check, decodeAll, readTopic, type Check } from '../../cli/demo/checks.js';
import { APP_NAMES, type DemoPlan } from '../../cli/demo/plan.js';
import type { DemoStream } from '../../cli/demo/stream.js';
import { FAULT_KINDS, type Journal } from './journal.js';
import { redisKeys } from '../../sinks/redis/writers.js';

export interface ChaosCheckInputs {
  plan: DemoPlan;
  stream: DemoStream;
  admin: Admin;
  reader: PartitionReader;
  /** the routing-decisions topic, decoded (runChecks has read it) */
  decisions: readonly RoutingDecision[];
  pg: pg.Client;
  redis: Redis;
  serdeFor: SerdeFor;
  journal: Journal;
}

const n = (x: number) => x.toLocaleString('en-US');

export async function chaosChecks(inp: ChaosCheckInputs): Promise<Check[]> {
  const decoded = async <T>(topic: string) => decodeAll<T>(await readTopic(inp.admin, inp.reader, topic), inp.serdeFor(topic), topic);
  const outputs = {
    ledger: await decoded<LedgerEntry>('ledger-entries'),
    positions: await decoded<Position>('positions'),
    reconciliations: await decoded<Reconciliation>('reconciliations'),
    decisions: inp.decisions,
  };
  return [outputsOnce(outputs), await sinksEqualTopics(inp, outputs), faultsInjected(inp), ownExits(inp.journal)];
}

interface Outputs {
  ledger: LedgerEntry[];
  positions: Position[];
  reconciliations: Reconciliation[];
  decisions: readonly RoutingDecision[];
}

/** What identifies a ledger entry: its account and its id (both the table's key and the topic's identity). */
const entryKey = (e: Pick<LedgerEntry, 'accountId' | 'entryId'>) => `${e.accountId}/${e.entryId}`;
/** What identifies a routing decision: its tenant and its conversation. */
const decisionKey = (d: Pick<RoutingDecision, 'tenantId' | 'conversationId'>) => `${d.tenantId}/${d.conversationId}`;

/** Keys seen more than once. */
function repeated(keys: Iterable<string>): string[] {
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const k of keys) (seen.has(k) ? twice : seen).add(k);
  return [...twice];
}

function outputsOnce(o: Outputs): Check {
  const json = (v: unknown) => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));
  const problems = [
    ...repeated(o.ledger.map(entryKey)).map((id) => `ledger entry ${id} is in ledger-entries more than once`),
    ...repeated(o.positions.map((p) => `${p.accountId}|${p.instrument} after ${p.lastTradeId} v${p.lastTradeVersion}`)).map((k) => `position ${k} is in positions more than once`),
    ...repeated(o.reconciliations.map((r) => `${r.paymentId} ${json(r)}`)).map((k) => `reconciliation ${k.split(' ')[0]} is in reconciliations more than once with the same result`),
    ...repeated(o.decisions.map(decisionKey)).map((k) => `conversation ${k} is in routing-decisions more than once`),
  ];
  return check(
    'outputs exactly once',
    problems,
    `no output record twice: ${n(o.ledger.length)} ledger entries, ${n(o.positions.length)} position updates, ${n(o.reconciliations.length)} reconciliation results, ${n(o.decisions.length)} routing decisions (read_committed)`,
  );
}

async function sinksEqualTopics(inp: ChaosCheckInputs, o: Outputs): Promise<Check> {
  const problems: string[] = [];
  const schema = quoteIdent(inp.plan.schema);

  // ledger entries: Postgres = the topic, entry by entry
  const ledgerRows = await inp.pg.query<{ entry_id: string; account_id: string; side: string; amount: string; reverses: string | null }>(
    `SELECT entry_id, account_id, side, amount::text, reverses FROM ${schema}.ledger_entries`,
  );
  const inPostgres = new Map(
    ledgerRows.rows.map((r) => [entryKey({ accountId: r.account_id, entryId: r.entry_id }), `${r.account_id} ${r.side} ${r.amount} ${r.reverses ?? '-'}`]),
  );
  for (const e of o.ledger) {
    const want = `${e.accountId} ${e.side} ${formatDecimal(e.amount, Scale.notional)} ${e.reverses ?? '-'}`;
    const have = inPostgres.get(entryKey(e));
    if (have === undefined) problems.push(`Postgres: ledger entry ${entryKey(e)} is missing`);
    else if (have !== want) problems.push(`Postgres: ledger entry ${entryKey(e)} is ${have}, the topic says ${want}`);
  }
  const ledgerIds = new Set(o.ledger.map(entryKey));
  for (const id of inPostgres.keys()) if (!ledgerIds.has(id)) problems.push(`Postgres: ledger entry ${id} is not in the topic`);

  // routing decisions: Postgres and Redis = the topic, decision by decision
  const decisionText = (d: Pick<RoutingDecision, 'tenantId' | 'agentId' | 'assignedAt' | 'waitMs' | 'queued'>) =>
    `${d.tenantId} → ${d.agentId} at ${d.assignedAt} after ${d.waitMs} ms${d.queued ? ' (queued)' : ''}`;
  const routingRows = await inp.pg.query<{ conversation_id: string; tenant_id: string; agent_id: string; assigned_at: string; wait_ms: string; queued: boolean }>(
    `SELECT conversation_id, tenant_id, agent_id, (extract(epoch FROM assigned_at) * 1000)::bigint::text AS assigned_at, wait_ms::text, queued
       FROM ${schema}.routing_decisions`,
  );
  const decisionsInPostgres = new Map(
    routingRows.rows.map((r) => [decisionKey({ tenantId: r.tenant_id, conversationId: r.conversation_id }), decisionText({ tenantId: r.tenant_id, agentId: r.agent_id, assignedAt: Number(r.assigned_at), waitMs: Number(r.wait_ms), queued: r.queued })]),
  );
  const prefix = inp.plan.redisPrefix;
  const redisKey = (d: RoutingDecision) => redisKeys.routingDecision(prefix, d.tenantId, d.conversationId);
  const inRedis = o.decisions.length === 0 ? [] : await inp.redis.mget(...o.decisions.map(redisKey));
  for (const [i, d] of o.decisions.entries()) {
    const want = decisionText(d);
    const pgHave = decisionsInPostgres.get(decisionKey(d));
    if (pgHave === undefined) problems.push(`Postgres: routing decision of ${decisionKey(d)} is missing`);
    else if (pgHave !== want) problems.push(`Postgres: routing decision of ${decisionKey(d)} is ${pgHave}, the topic says ${want}`);
    const text = inRedis[i];
    if (text === null || text === undefined) {
      problems.push(`Redis: ${redisKey(d)} is missing`);
      continue;
    }
    const r = JSON.parse(text) as RoutingDecision;
    if (decisionText(r) !== want) problems.push(`Redis: ${redisKey(d)} is ${decisionText(r)}, the topic says ${want}`);
  }
  const conversations = new Set(o.decisions.map(decisionKey));
  for (const id of decisionsInPostgres.keys()) if (!conversations.has(id)) problems.push(`Postgres: routing decision of ${id} is not in the topic`);
  const redisDecisionKeys = await countKeys(inp.redis, `${prefix}:routing-decision:`);
  if (redisDecisionKeys !== conversations.size) problems.push(`Redis holds ${n(redisDecisionKeys)} routing-decision keys, the topic ${n(conversations.size)} decisions`);

  return check(
    'sinks = output topics',
    problems,
    `Postgres holds exactly the ${n(ledgerIds.size)} ledger entries and ${n(conversations.size)} routing decisions of the topics, Redis exactly the ${n(conversations.size)} routing decisions`,
  );
}

async function countKeys(redis: Redis, keyPrefix: string): Promise<number> {
  let count = 0;
  for await (const keys of keysStartingWith(redis, keyPrefix)) count += keys.length;
  return count;
}

function faultsInjected(inp: ChaosCheckInputs): Check {
  const problems: string[] = [];
  for (const kind of FAULT_KINDS) if (inp.journal.faults.get(kind)! === 0) problems.push(`no fault of the kind "${kind}" happened`);
  const malformed = APP_NAMES.map((a) => [a, inp.stream.stats[a].malformed] as const);
  for (const [app, k] of malformed) if (k === 0) problems.push(`no malformed ${app} record was sent`);
  const f = (kind: (typeof FAULT_KINDS)[number]) => n(inp.journal.faults.get(kind)!);
  return check(
    'faults injected',
    problems,
    `${f('worker killed')} workers and ${f('sink killed')} sinks SIGKILLed and restarted, broker restarted ${f('broker restarted')} time(s), ` +
      `${f('Postgres connections cut')} Postgres and ${f('Redis connections cut')} Redis connections cut, malformed records sent: ${malformed.map(([a, k]) => `${a} ${k}`).join(', ')}`,
  );
}

function ownExits(journal: Journal): Check {
  return check(
    'no process exited on its own',
    journal.ownExits.map((e) => `exited without being killed: ${e}`),
    'only the processes this run killed went down; each came back and got ready',
  );
}
