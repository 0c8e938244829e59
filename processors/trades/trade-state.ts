import type { TradeEvent } from '../../schemas/types.js';
import { TradeRejectedError } from './errors.js';

/** The terms of one trade version: what positions and ledger entries are computed from (quantity scale 4, price scale 6). */
export type TradeTerms = Pick<TradeEvent, 'instrument' | 'side' | 'quantity' | 'price' | 'currency' | 'tradeTime'>;

/**
 * What the store keeps per trade (key: account and tradeId).
 * - `version`: the last version applied (a CANCEL's version for a cancelled trade), so the next event can be
 *   sequenced;
 * - `terms` / `termsVersion`: the terms of the current version — the one whose ledger entries stand — which an
 *   amend or cancel reverses, and which the live set holds while the trade is live;
 * - `live`: false once cancelled; the record stays, so a late AMEND, CANCEL or a re-used tradeId is refused.
 */
export interface TradeRecord {
  tradeId: string;
  version: number;
  live: boolean;
  termsVersion: number;
  terms: TradeTerms;
}

/** A live trade as the live set of its (account, instrument) holds it, in (tradeTime, tradeId) order. */
export interface LiveTrade extends TradeTerms {
  tradeId: string;
  version: number;
}

/** Where a live trade sits in its live set: (tradeTime, tradeId). */
export interface OrderKey {
  tradeTime: number;
  tradeId: string;
}

export function termsOf(e: TradeEvent): TradeTerms {
  return { instrument: e.instrument, side: e.side, quantity: e.quantity, price: e.price, currency: e.currency, tradeTime: e.tradeTime };
}

export function liveTradeOf(r: TradeRecord): LiveTrade {
  return { ...r.terms, tradeId: r.tradeId, version: r.termsVersion };
}

/**
 * Applies one (deduplicated, validated) trade event to the trade's record and returns the new record.
 * Throws TradeRejectedError, changing nothing, when the event does not follow:
 * - NEW for a tradeId the account already has (even cancelled): a stale version 1;
 * - AMEND / CANCEL for an unknown trade (the NEW is missing: a gap), of a cancelled trade, or whose version is not
 *   the current one + 1 (lower or equal: stale; higher: a gap — a version went missing upstream);
 * - CANCEL whose instrument, side, quantity, price or currency differ from the cancelled version's (the schema says
 *   a CANCEL repeats them; a mismatch means the producer and this state disagree about the trade).
 */
export function applyTradeEvent(current: TradeRecord | undefined, e: TradeEvent): TradeRecord {
  const what = `${e.type} ${e.tradeId} v${e.version} of account ${e.accountId}`;
  if (e.type === 'NEW') {
    if (current) throw new TradeRejectedError('STALE_VERSION', `${what}: the trade exists already (version ${current.version}${current.live ? '' : ', cancelled'})`);
    return { tradeId: e.tradeId, version: 1, live: true, termsVersion: 1, terms: termsOf(e) };
  }
  if (!current) throw new TradeRejectedError('UNKNOWN_TRADE', `${what}: no such trade (its NEW is missing)`);
  if (!current.live) throw new TradeRejectedError('TRADE_CANCELLED', `${what}: the trade was cancelled at version ${current.version}`);
  if (e.version <= current.version) throw new TradeRejectedError('STALE_VERSION', `${what}: stale, the trade is at version ${current.version} already`);
  if (e.version > current.version + 1) throw new TradeRejectedError('VERSION_GAP', `${what}: out of sequence, the trade is at version ${current.version} (expected ${current.version + 1})`);
  if (e.type === 'AMEND') return { tradeId: e.tradeId, version: e.version, live: true, termsVersion: e.version, terms: termsOf(e) };
  const t = current.terms;
  const differ = (['instrument', 'side', 'quantity', 'price', 'currency'] as const).filter((f) => t[f] !== e[f]);
  if (differ.length > 0) {
    throw new TradeRejectedError('CANCEL_TERMS_MISMATCH', `${what}: ${differ.join(', ')} differ from version ${current.termsVersion} being cancelled`);
  }
  return { tradeId: e.tradeId, version: e.version, live: false, termsVersion: current.termsVersion, terms: current.terms };
}

/**
 * The order in which positions take live trades: tradeTime, then tradeId in UTF-8 byte order (= code point
 * order). It is exactly the byte order of `liveKey`, so a prefix scan of the live set yields this order.
 */
export function compareTradeOrder(a: OrderKey, b: OrderKey): number {
  if (a.tradeTime !== b.tradeTime) return a.tradeTime < b.tradeTime ? -1 : 1;
  return Buffer.compare(Buffer.from(a.tradeId, 'utf8'), Buffer.from(b.tradeId, 'utf8'));
}

// Store keys. U+0000 separates the parts (validation refuses it inside ids), so one part never runs into the next
// and a prefix of whole parts selects exactly one account's (and instrument's) entries.
const SEP = '\u0000';
/** Shifts every safe integer to a non-negative one below 2^54, written as 14 hex digits: byte order = numeric order. */
const TIME_OFFSET = 2n ** 53n;

/** Key of a trade's record in the trades store. */
export function tradeKey(accountId: string, tradeId: string): string {
  return `${accountId}${SEP}${tradeId}`;
}

/** Key of the position state of (account, instrument). */
export function positionStateKey(accountId: string, instrument: string): string {
  return `${accountId}${SEP}${instrument}`;
}

/** Prefix of the live-set keys of (account, instrument). */
export function liveSetPrefix(accountId: string, instrument: string): string {
  return `${accountId}${SEP}${instrument}${SEP}`;
}

/** Key of a live trade: its (account, instrument) prefix, then its order (tradeTime, tradeId). */
export function liveKey(accountId: string, t: { instrument: string; tradeTime: number; tradeId: string }): string {
  const time = (BigInt(t.tradeTime) + TIME_OFFSET).toString(16).padStart(14, '0');
  return `${liveSetPrefix(accountId, t.instrument)}${time}${SEP}${t.tradeId}`;
}

/** Key of the checkpoint after the live trade at order key `k` of (account, instrument): that trade's live key. */
export function checkpointKey(accountId: string, instrument: string, k: OrderKey): string {
  return liveKey(accountId, { instrument, tradeTime: k.tradeTime, tradeId: k.tradeId });
}

/**
 * Bounds (both inclusive, as `KeyValueStore.range` takes them) of the live-set keys of (account, instrument) that
 * sort strictly after `after` (a trade's order key), or of the whole live set when `after` is null.
 * The live key at `after` (`checkpointKey` writes it from an order key) + SEP is the least string above that key;
 * every live key goes on with 14 hex digits after the prefix, all below U+007F, so `prefix + U+007F` lies above
 * every key of the live set and below the next prefix.
 */
export function liveKeysAfter(
  accountId: string,
  instrument: string,
  after: OrderKey | null,
): { from: string; to: string } {
  const prefix = liveSetPrefix(accountId, instrument);
  const from = after ? `${checkpointKey(accountId, instrument, after)}${SEP}` : prefix;
  return { from, to: `${prefix}\u007f` };
}
