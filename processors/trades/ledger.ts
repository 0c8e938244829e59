import type { LedgerEntry } from '../../schemas/types.js';
import type { TradeRecord, TradeTerms } from './trade-state.js';

export type Leg = 'securities' | 'cash';
const LEGS: readonly Leg[] = ['securities', 'cash'];

/** quantity (scale 4) × price (scale 6): the notional at scale 10, exact. */
export function notionalOf(t: Pick<TradeTerms, 'quantity' | 'price'>): bigint {
  return t.quantity * t.price;
}

/** `<tradeId>:<version>:<leg>`, and `…:reversal` for its reversal: derived from the trade alone, so a replay reproduces it. */
export function entryId(tradeId: string, version: number, leg: Leg, reversal = false): string {
  return `${tradeId}:${version}:${leg}${reversal ? ':reversal' : ''}`;
}

export function ledgerAccountOf(accountId: string, terms: Pick<TradeTerms, 'instrument' | 'currency'>, leg: Leg): string {
  return leg === 'securities' ? `securities:${accountId}:${terms.instrument}` : `cash:${accountId}:${terms.currency}`;
}

/** A BUY debits securities and credits cash; a SELL the reverse. */
function sideOf(terms: Pick<TradeTerms, 'side'>, leg: Leg): 'DEBIT' | 'CREDIT' {
  return (terms.side === 'BUY') === (leg === 'securities') ? 'DEBIT' : 'CREDIT';
}

/** The two legs (securities, then cash) that a trade version posts. */
export function postingsOf(accountId: string, tradeId: string, version: number, terms: TradeTerms, postedAt: number): LedgerEntry[] {
  return LEGS.map((leg) => legEntry(accountId, tradeId, version, terms, leg, postedAt, false));
}

/**
 * The reversal of every entry a trade version posted: same ledger account, amount and currency, opposite side,
 * `reverses` naming the entry, `tradeVersion` the reversed version. Rebuilt from the version's terms (which the
 * trade's record keeps), so the ledger needs no store of its own.
 */
export function reversalsOf(accountId: string, tradeId: string, version: number, terms: TradeTerms, postedAt: number): LedgerEntry[] {
  return LEGS.map((leg) => legEntry(accountId, tradeId, version, terms, leg, postedAt, true));
}

function legEntry(accountId: string, tradeId: string, version: number, terms: TradeTerms, leg: Leg, postedAt: number, reversal: boolean): LedgerEntry {
  const posted = sideOf(terms, leg);
  return {
    entryId: entryId(tradeId, version, leg, reversal),
    accountId,
    tradeId,
    tradeVersion: version,
    ledgerAccount: ledgerAccountOf(accountId, terms, leg),
    side: reversal ? (posted === 'DEBIT' ? 'CREDIT' : 'DEBIT') : posted,
    amount: notionalOf(terms),
    currency: terms.currency,
    reverses: reversal ? entryId(tradeId, version, leg) : null,
    postedAt,
  };
}

/**
 * The entries one trade event posts, in order: NEW posts version 1; AMEND reverses the previous version, then
 * posts the new one; CANCEL reverses the current version. `postedAt` is the event's eventTime.
 */
export function ledgerEntriesFor(accountId: string, previous: TradeRecord | undefined, next: TradeRecord, postedAt: number): LedgerEntry[] {
  const entries: LedgerEntry[] = [];
  if (previous?.live) entries.push(...reversalsOf(accountId, previous.tradeId, previous.termsVersion, previous.terms, postedAt));
  if (next.live) entries.push(...postingsOf(accountId, next.tradeId, next.termsVersion, next.terms, postedAt));
  return entries;
}
