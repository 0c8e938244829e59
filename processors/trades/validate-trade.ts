import type { TradeEvent } from '../../schemas/types.js';

/** Exclusive bounds of the unscaled values the Avro decimals can hold: 10^precision. */
export const DecimalLimit = {
  /** quantity, decimal(20,4) (trade and position) */
  quantity: 10n ** 20n,
  /** price, decimal(20,6); averageCost has the same type */
  price: 10n ** 20n,
  /** notional, costBasis, realisedPnl, ledger amount: decimal(38,10) */
  amount: 10n ** 38n,
} as const;

const TYPES = new Set(['NEW', 'AMEND', 'CANCEL']);
const SIDES = new Set(['BUY', 'SELL']);
const CURRENCY = /^[A-Z]{3}$/;

/**
 * The checks a trade event can fail on its own, without state (the source's `validate`: a reason sends the record
 * to the dead-letter topic). The Avro serde already enforces types and decimal precision; these checks repeat what
 * matters so any serde (e.g. JSON in tests) gets the same protection, and add the domain rules:
 * - the record key is the accountId; ids are non-empty and free of U+0000 (the separator of state-store keys);
 * - NEW is version 1, AMEND and CANCEL at least 2;
 * - quantity > 0 and price >= 0 fit decimal(20,4) / decimal(20,6);
 * - the notional quantity × price fits the ledger's decimal(38,10) — two decimal(20,·) factors can have 40 digits,
 *   and an amount that cannot be posted exactly must not be posted at all;
 * - times are integral epoch milliseconds.
 */
export function validateTradeEvent(key: unknown, value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return 'trade event is empty';
  const e = value as Partial<Record<keyof TradeEvent, unknown>>;
  for (const f of ['eventId', 'accountId', 'tradeId', 'instrument'] as const) {
    const v = e[f];
    if (typeof v !== 'string' || v.length === 0) return `${f} must be a non-empty string`;
    if (v.includes('\u0000')) return `${f} must not contain U+0000`;
  }
  if (key !== e.accountId) return `record key ${JSON.stringify(key)} is not the accountId ${JSON.stringify(e.accountId)}`;
  if (typeof e.type !== 'string' || !TYPES.has(e.type)) return `type ${JSON.stringify(e.type)} is not NEW, AMEND or CANCEL`;
  if (typeof e.side !== 'string' || !SIDES.has(e.side)) return `side ${JSON.stringify(e.side)} is not BUY or SELL`;
  if (typeof e.version !== 'number' || !Number.isSafeInteger(e.version) || e.version < 1) return `version ${String(e.version)} is not a positive integer`;
  if (e.type === 'NEW' && e.version !== 1) return `a NEW trade is version 1, not ${e.version}`;
  if (e.type !== 'NEW' && e.version < 2) return `an ${String(e.type)} is version 2 or later, not ${e.version}`;
  if (typeof e.currency !== 'string' || !CURRENCY.test(e.currency)) return `currency ${JSON.stringify(e.currency)} is not an ISO 4217 code`;
  if (typeof e.quantity !== 'bigint') return 'quantity must be an exact decimal (bigint, scale 4)';
  if (typeof e.price !== 'bigint') return 'price must be an exact decimal (bigint, scale 6)';
  if (e.quantity <= 0n) return 'quantity must be > 0 (the side gives the sign)';
  if (e.quantity >= DecimalLimit.quantity) return 'quantity does not fit decimal(20,4)';
  if (e.price < 0n) return 'price must be >= 0';
  if (e.price >= DecimalLimit.price) return 'price does not fit decimal(20,6)';
  if (e.quantity * e.price >= DecimalLimit.amount) return 'notional quantity × price does not fit decimal(38,10)';
  for (const f of ['tradeTime', 'eventTime'] as const) {
    const v = e[f];
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) return `${f} must be an integer of epoch milliseconds`;
  }
  return undefined;
}
