/**
 * Table writers of the Postgres sink, one per output topic.
 * - `toRow`: validate a decoded record and convert it to a row (decimals to exact text, times to ISO text);
 *   called when the record is added, so a bad record stalls only its partition;
 * - `write`: one batched statement per flush: `INSERT … SELECT * FROM unnest($1::type[], …) ON CONFLICT …`,
 *   inside the flush's transaction. "Latest wins" tables keep the last row per key of the batch (Postgres refuses
 *   to touch one row twice in a statement); insert-only tables do nothing on an existing id.
 * `postgresWriters` has the four weir outputs; any other topic can bring its own writer.
 */
import type { ClientBase } from 'pg';
import { Scale } from '../../schemas/types.js';
import { asFields, bool, dec, int, long, millis, oneOf, optDec, optStr, str } from '../fields.js';
import type { SinkRecord } from '../sink.js';

export type Cell = string | number | boolean | null;
export type Row = readonly Cell[];

export interface PostgresTopicWriter {
  readonly table: string;
  toRow(record: SinkRecord): Row;
  /** Write the rows of one flush (offset order per partition); returns the rows inserted or updated. */
  write(client: ClientBase, schema: string, rows: readonly Row[]): Promise<number>;
}

export interface Column {
  name: string;
  /** element type for the unnest cast: text, integer, bigint, numeric, boolean, timestamptz */
  type: 'text' | 'integer' | 'bigint' | 'numeric' | 'boolean' | 'timestamptz';
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A writer that upserts (`latest`) or inserts once (`insert-only`) through unnest arrays. */
export function unnestWriter(spec: {
  table: string;
  columns: readonly Column[];
  key: readonly string[];
  mode: 'latest' | 'insert-only';
  toRow: (record: SinkRecord) => Row;
}): PostgresTopicWriter {
  const keyIndexes = spec.key.map((k) => {
    const i = spec.columns.findIndex((c) => c.name === k);
    if (i < 0) throw new Error(`key column ${k} is not a column of ${spec.table}`);
    return i;
  });
  const cols = spec.columns.map((c) => quoteIdent(c.name)).join(', ');
  const arrays = spec.columns.map((c, i) => `$${i + 1}::${c.type}[]`).join(', ');
  const conflict =
    spec.mode === 'insert-only'
      ? 'DO NOTHING'
      : `DO UPDATE SET ${spec.columns
          .filter((c) => !spec.key.includes(c.name))
          .map((c) => `${quoteIdent(c.name)} = EXCLUDED.${quoteIdent(c.name)}`)
          .join(', ')}`;
  const onConflict = `ON CONFLICT (${spec.key.map(quoteIdent).join(', ')}) ${conflict}`;
  return {
    table: spec.table,
    toRow: spec.toRow,
    async write(client, schema, rows) {
      if (rows.length === 0) return 0;
      // one row per key: the last for 'latest', the first (identical on a replay) for 'insert-only'
      const byKey = new Map<string, Row>();
      for (const row of rows) {
        const k = JSON.stringify(keyIndexes.map((i) => row[i]));
        if (spec.mode === 'latest' || !byKey.has(k)) {
          byKey.delete(k);
          byKey.set(k, row);
        }
      }
      const columns = spec.columns.map((_, i) => [...byKey.values()].map((r) => r[i] ?? null));
      const sql = `INSERT INTO ${quoteIdent(schema)}.${quoteIdent(spec.table)} (${cols}) SELECT * FROM unnest(${arrays}) ${onConflict}`;
      const res = await client.query(sql, columns);
      return res.rowCount ?? 0;
    },
  };
}

const routingReasons = ['ONLY_CANDIDATE', 'LEAST_LOADED', 'LONGEST_IDLE', 'LOWEST_AGENT_ID'] as const;
const reconciliationStatuses = ['MATCHED', 'AMOUNT_MISMATCH', 'MISSING_SETTLEMENT', 'UNEXPECTED_SETTLEMENT'] as const;
const vendors = ['ADYEN', 'SEPA'] as const;

export const postgresWriters = {
  /**
   * routing-decisions → routing_decisions ((tenant_id, conversation_id) PK: a conversation id is unique inside its
   * tenant only; one decision per conversation, latest wins)
   */
  routingDecisions(): PostgresTopicWriter {
    return unnestWriter({
      table: 'routing_decisions',
      key: ['tenant_id', 'conversation_id'],
      mode: 'latest',
      columns: [
        { name: 'conversation_id', type: 'text' },
        { name: 'tenant_id', type: 'text' },
        { name: 'agent_id', type: 'text' },
        { name: 'skill', type: 'text' },
        { name: 'priority', type: 'integer' },
        { name: 'requested_at', type: 'timestamptz' },
        { name: 'assigned_at', type: 'timestamptz' },
        { name: 'wait_ms', type: 'bigint' },
        { name: 'queued', type: 'boolean' },
        { name: 'reason', type: 'text' },
      ],
      toRow(r) {
        const v = asFields(r.value);
        return [
          str(v, 'conversationId'),
          str(v, 'tenantId'),
          str(v, 'agentId'),
          str(v, 'skill'),
          int(v, 'priority'),
          millis(v, 'requestedAt'),
          millis(v, 'assignedAt'),
          long(v, 'waitMs'),
          bool(v, 'queued'),
          oneOf(v, 'reason', routingReasons),
        ];
      },
    });
  },

  /** positions → positions ((account_id, instrument) PK, latest wins) */
  positions(): PostgresTopicWriter {
    return unnestWriter({
      table: 'positions',
      key: ['account_id', 'instrument'],
      mode: 'latest',
      columns: [
        { name: 'account_id', type: 'text' },
        { name: 'instrument', type: 'text' },
        { name: 'quantity', type: 'numeric' },
        { name: 'cost_basis', type: 'numeric' },
        { name: 'average_cost', type: 'numeric' },
        { name: 'realised_pnl', type: 'numeric' },
        { name: 'currency', type: 'text' },
        { name: 'open_lots', type: 'integer' },
        { name: 'live_trades', type: 'integer' },
        { name: 'last_trade_id', type: 'text' },
        { name: 'last_trade_version', type: 'integer' },
        { name: 'updated_at', type: 'timestamptz' },
      ],
      toRow(r) {
        const v = asFields(r.value);
        return [
          str(v, 'accountId'),
          str(v, 'instrument'),
          dec(v, 'quantity', 20, Scale.quantity),
          dec(v, 'costBasis', 38, Scale.notional),
          optDec(v, 'averageCost', 20, Scale.averageCost),
          dec(v, 'realisedPnl', 38, Scale.notional),
          str(v, 'currency'),
          int(v, 'openLots'),
          int(v, 'liveTrades'),
          str(v, 'lastTradeId'),
          int(v, 'lastTradeVersion'),
          millis(v, 'updatedAt'),
        ];
      },
    });
  },

  /**
   * ledger-entries → ledger_entries ((account_id, entry_id) PK: an entry id comes from the trade id, unique inside
   * its account only; insert-only: a replay converges to the same table)
   */
  ledgerEntries(): PostgresTopicWriter {
    return unnestWriter({
      table: 'ledger_entries',
      key: ['account_id', 'entry_id'],
      mode: 'insert-only',
      columns: [
        { name: 'entry_id', type: 'text' },
        { name: 'account_id', type: 'text' },
        { name: 'trade_id', type: 'text' },
        { name: 'trade_version', type: 'integer' },
        { name: 'ledger_account', type: 'text' },
        { name: 'side', type: 'text' },
        { name: 'amount', type: 'numeric' },
        { name: 'currency', type: 'text' },
        { name: 'reverses', type: 'text' },
        { name: 'posted_at', type: 'timestamptz' },
      ],
      toRow(r) {
        const v = asFields(r.value);
        return [
          str(v, 'entryId'),
          str(v, 'accountId'),
          str(v, 'tradeId'),
          int(v, 'tradeVersion'),
          str(v, 'ledgerAccount'),
          oneOf(v, 'side', ['DEBIT', 'CREDIT'] as const),
          dec(v, 'amount', 38, Scale.notional),
          str(v, 'currency'),
          optStr(v, 'reverses'),
          millis(v, 'postedAt'),
        ];
      },
    });
  },

  /** reconciliations → reconciliations (payment_id PK, latest wins) */
  reconciliations(): PostgresTopicWriter {
    return unnestWriter({
      table: 'reconciliations',
      key: ['payment_id'],
      mode: 'latest',
      columns: [
        { name: 'payment_id', type: 'text' },
        { name: 'status', type: 'text' },
        { name: 'settlement_id', type: 'text' },
        { name: 'merchant_id', type: 'text' },
        { name: 'vendor', type: 'text' },
        { name: 'expected_amount', type: 'numeric' },
        { name: 'settled_amount', type: 'numeric' },
        { name: 'difference', type: 'numeric' },
        { name: 'fee', type: 'numeric' },
        { name: 'currency', type: 'text' },
        { name: 'settlement_currency', type: 'text' },
        { name: 'decided_at', type: 'timestamptz' },
      ],
      toRow(r) {
        const v = asFields(r.value);
        return [
          str(v, 'paymentId'),
          oneOf(v, 'status', reconciliationStatuses),
          optStr(v, 'settlementId'),
          optStr(v, 'merchantId'),
          oneOf(v, 'vendor', vendors),
          optDec(v, 'expectedAmount', 20, Scale.money),
          optDec(v, 'settledAmount', 20, Scale.money),
          optDec(v, 'difference', 21, Scale.money),
          optDec(v, 'fee', 20, Scale.money),
          str(v, 'currency'),
          optStr(v, 'settlementCurrency'),
          millis(v, 'decidedAt'),
        ];
      },
    });
  },
};
