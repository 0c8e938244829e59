/**
 * Exactness checks of the Postgres tables against what was produced: every expected row present once with its
 * exact values, nothing else. Rows are matched by what identifies them on their topic (a ledger entry by account
 * and entry id, a routing decision by tenant and conversation): the expected maps are keyed so (`entryKey`,
 * `decisionKey`).
 */
import type pg from 'pg';
import { expect } from 'vitest';
import { quoteIdent } from '../../sinks/postgres/writers.js';
import { decisionKey, entryKey, type ledgerEntries, type positions, type reconciliations, type routingDecisions } from '../fixtures/sink-data.js';

export interface Expected {
  ledger?: ReturnType<typeof ledgerEntries>['expected'];
  positions?: ReturnType<typeof positions>['expected'];
  routing?: ReturnType<typeof routingDecisions>['expected'];
  reconciliations?: ReturnType<typeof reconciliations>['expected'];
}

const ms = (d: Date | null) => (d === null ? null : d.getTime());

export async function expectTablesExact(c: pg.Client, schema: string, expected: Expected): Promise<void> {
  const t = (name: string) => `${quoteIdent(schema)}.${quoteIdent(name)}`;
  if (expected.ledger) {
    const counts = await c.query<{ rows: string; ids: string }>(
      `SELECT count(*) AS rows, count(DISTINCT (account_id, entry_id)) AS ids FROM ${t('ledger_entries')}`,
    );
    expect({ rows: Number(counts.rows[0]!.rows), ids: Number(counts.rows[0]!.ids) }).toEqual({ rows: expected.ledger.size, ids: expected.ledger.size });
    const res = await c.query(`SELECT * FROM ${t('ledger_entries')}`);
    const wrong: string[] = [];
    for (const r of res.rows) {
      const key = entryKey({ accountId: r.account_id, entryId: r.entry_id });
      const e = expected.ledger.get(key);
      const got = [r.account_id, r.entry_id, r.trade_id, r.trade_version, r.ledger_account, r.side, r.amount, r.currency, r.reverses, ms(r.posted_at)];
      const want = e && [e.accountId, e.entryId, e.tradeId, e.tradeVersion, e.ledgerAccount, e.side, e.amountText, e.currency, e.reverses, e.postedAt];
      if (JSON.stringify(got) !== JSON.stringify(want)) wrong.push(`${key}: ${JSON.stringify(got)} ≠ ${JSON.stringify(want)}`);
    }
    expect(wrong.slice(0, 5)).toEqual([]);
  }
  if (expected.positions) {
    const res = await c.query(`SELECT * FROM ${t('positions')}`);
    expect(res.rowCount).toBe(expected.positions.size);
    const wrong: string[] = [];
    for (const r of res.rows) {
      const key = `${r.account_id}|${r.instrument}`;
      const e = expected.positions.get(key);
      const got = [r.quantity, r.cost_basis, r.average_cost, r.realised_pnl, r.currency, r.open_lots, r.live_trades, r.last_trade_id, r.last_trade_version, ms(r.updated_at)];
      const want = e && [e.quantity, e.costBasis, e.averageCost, e.realisedPnl, e.currency, e.openLots, e.liveTrades, e.lastTradeId, e.lastTradeVersion, e.updatedAt];
      if (JSON.stringify(got) !== JSON.stringify(want)) wrong.push(`${key}: ${JSON.stringify(got)} ≠ ${JSON.stringify(want)}`);
    }
    expect(wrong.slice(0, 5)).toEqual([]);
  }
  if (expected.routing) {
    const res = await c.query(`SELECT * FROM ${t('routing_decisions')}`);
    expect(res.rowCount).toBe(expected.routing.size);
    const wrong: string[] = [];
    for (const r of res.rows) {
      const key = decisionKey({ tenantId: r.tenant_id, conversationId: r.conversation_id });
      const e = expected.routing.get(key);
      const got = [r.tenant_id, r.conversation_id, r.agent_id, r.skill, r.priority, ms(r.requested_at), ms(r.assigned_at), Number(r.wait_ms), r.queued, r.reason];
      const want = e && [e.tenantId, e.conversationId, e.agentId, e.skill, e.priority, e.requestedAt, e.assignedAt, e.waitMs, e.queued, e.reason];
      if (JSON.stringify(got) !== JSON.stringify(want)) wrong.push(`${key}: ${JSON.stringify(got)} ≠ ${JSON.stringify(want)}`);
    }
    expect(wrong.slice(0, 5)).toEqual([]);
  }
  if (expected.reconciliations) {
    const res = await c.query(`SELECT * FROM ${t('reconciliations')}`);
    expect(res.rowCount).toBe(expected.reconciliations.size);
    const wrong: string[] = [];
    for (const r of res.rows) {
      const e = expected.reconciliations.get(r.payment_id);
      const got = [r.status, r.settlement_id, r.merchant_id, r.vendor, r.expected_amount, r.settled_amount, r.difference, r.fee, r.currency, r.settlement_currency, ms(r.decided_at)];
      const want = e && [e.status, e.settlementId, e.merchantId, e.vendor, e.texts.expectedAmount, e.texts.settledAmount, e.texts.difference, e.texts.fee, e.currency, e.settlementCurrency, e.decidedAt];
      if (JSON.stringify(got) !== JSON.stringify(want)) wrong.push(`${r.payment_id}: ${JSON.stringify(got)} ≠ ${JSON.stringify(want)}`);
    }
    expect(wrong.slice(0, 5)).toEqual([]);
  }
}
