import type { Position } from '../../schemas/types.js';
import { TradeRejectedError } from './errors.js';
import { compareTradeOrder, type LiveTrade, type OrderKey } from './trade-state.js';
import { DecimalLimit } from './validate-trade.js';

/** An open FIFO lot: signed quantity (scale 4; > 0 long, < 0 short) at the price of the trade that opened it. */
export interface Lot {
  tradeId: string;
  quantity: bigint;
  /** scale 6 */
  price: bigint;
}

/**
 * What the store keeps per (account, instrument): the FIFO result of its live set, so a trade that sorts after every
 * live trade (the usual NEW) is applied in O(open lots) instead of replaying the live set.
 * - `lots`: open lots, oldest first, all of one sign;
 * - `realisedPnl`: scale 10;
 * - `last`: order key of the latest live trade (null when the live set is empty);
 * - `checkpoints`: order keys of the live trades after which the checkpoint store holds the FIFO state (ascending;
 *   see TradesProcessor). Absent in states written before checkpoints existed, which reads as none.
 */
export interface PositionState {
  currency: string;
  lots: Lot[];
  realisedPnl: bigint;
  liveTrades: number;
  last: OrderKey | null;
  checkpoints?: OrderKey[];
}

type FifoTrade = Pick<LiveTrade, 'tradeId' | 'side' | 'quantity' | 'price'>;

/**
 * One FIFO step: a BUY closes the oldest short lots, a SELL the oldest long lots, each match realising
 * (sell price − buy price) × matched quantity; what is left opens a new lot at the trade's price.
 * Returns new lots and the P&L realised by this trade; the input is not changed.
 */
export function matchFifo(lots: readonly Lot[], t: FifoTrade): { lots: Lot[]; realised: bigint } {
  const buy = t.side === 'BUY';
  const out = lots.slice();
  let remaining = t.quantity;
  let realised = 0n;
  while (remaining > 0n && out.length > 0) {
    const lot = out[0]!;
    const lotIsLong = lot.quantity > 0n;
    if (lotIsLong === buy) break; // the lots are on the trade's side: nothing to close
    const open = lotIsLong ? lot.quantity : -lot.quantity;
    const matched = remaining < open ? remaining : open;
    realised += (buy ? lot.price - t.price : t.price - lot.price) * matched;
    remaining -= matched;
    if (matched === open) out.shift();
    else out[0] = { ...lot, quantity: lotIsLong ? lot.quantity - matched : lot.quantity + matched };
  }
  if (remaining > 0n) out.push({ tradeId: t.tradeId, quantity: buy ? remaining : -remaining, price: t.price });
  return { lots: out, realised };
}

/** The position state of an empty live set: no lots, nothing realised; a flat instrument keeps its `currency`. */
export function emptyPositionState(currency: string): PositionState {
  return { currency, lots: [], realisedPnl: 0n, liveTrades: 0, last: null };
}

/**
 * Applies a live trade that sorts after every trade in `state` (the caller checks with `sortsLast`).
 * Throws CURRENCY_MISMATCH when the position already has live trades in another currency.
 */
export function appendTrade(state: PositionState, t: LiveTrade): PositionState {
  if (state.liveTrades > 0 && state.currency !== t.currency) {
    throw new TradeRejectedError(
      'CURRENCY_MISMATCH',
      `trade ${t.tradeId} is in ${t.currency} but ${t.instrument} trades in ${state.currency} for this account`,
    );
  }
  const { lots, realised } = matchFifo(state.lots, t);
  return {
    currency: t.currency,
    lots,
    realisedPnl: state.realisedPnl + realised,
    liveTrades: state.liveTrades + 1,
    last: { tradeTime: t.tradeTime, tradeId: t.tradeId },
  };
}

/** Whether `t` comes after every live trade of `state`, so `appendTrade` gives what a full recompute would. */
export function sortsLast(state: PositionState, t: OrderKey): boolean {
  return state.last === null || compareTradeOrder(state.last, t) < 0;
}

/** Signed net quantity (scale 4): the sum of the open lots, which FIFO keeps equal to the signed sum of the live trades. */
export function quantityOf(lots: readonly Lot[]): bigint {
  return lots.reduce((sum, l) => sum + l.quantity, 0n);
}

/** Σ open lot quantity × lot price, signed (scale 10). */
export function costBasisOf(lots: readonly Lot[]): bigint {
  return lots.reduce((sum, l) => sum + l.quantity * l.price, 0n);
}

/** n / d rounded half-even, for n >= 0 and d > 0. */
export function divideHalfEven(n: bigint, d: bigint): bigint {
  if (n < 0n || d <= 0n) throw new RangeError(`divideHalfEven needs n >= 0 and d > 0, got ${n} / ${d}`);
  const q = n / d;
  const twice = 2n * (n % d);
  return twice > d || (twice === d && q % 2n === 1n) ? q + 1n : q;
}

/**
 * |costBasis / quantity| at scale 6, rounded half-even; null when flat. costBasis has scale 10 and quantity
 * scale 4, so the quotient of the unscaled values is already at scale 6.
 */
export function averageCostOf(costBasis: bigint, quantity: bigint): bigint | null {
  if (quantity === 0n) return null;
  return divideHalfEven(costBasis < 0n ? -costBasis : costBasis, quantity < 0n ? -quantity : quantity);
}

/** The Position record of a state, stamped with the trade event that produced it. */
export function positionOf(
  accountId: string,
  instrument: string,
  state: PositionState,
  cause: { tradeId: string; version: number; eventTime: number },
): Position {
  const quantity = quantityOf(state.lots);
  const costBasis = costBasisOf(state.lots);
  return {
    accountId,
    instrument,
    quantity,
    costBasis,
    averageCost: averageCostOf(costBasis, quantity),
    realisedPnl: state.realisedPnl,
    currency: state.currency,
    openLots: state.lots.length,
    liveTrades: state.liveTrades,
    lastTradeId: cause.tradeId,
    lastTradeVersion: cause.version,
    updatedAt: cause.eventTime,
  };
}

/** Throws POSITION_OVERFLOW when a figure of the position does not fit its Avro decimal. */
export function checkPositionFits(p: Position): void {
  const abs = (v: bigint) => (v < 0n ? -v : v);
  const problem =
    abs(p.quantity) >= DecimalLimit.quantity ? 'quantity does not fit decimal(20,4)'
    : abs(p.costBasis) >= DecimalLimit.amount ? 'costBasis does not fit decimal(38,10)'
    : abs(p.realisedPnl) >= DecimalLimit.amount ? 'realisedPnl does not fit decimal(38,10)'
    : undefined;
  if (problem) throw new TradeRejectedError('POSITION_OVERFLOW', `position ${p.accountId}|${p.instrument}: ${problem}`);
}
