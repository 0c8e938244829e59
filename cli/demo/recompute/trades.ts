/**
 * Positions and ledger nets recomputed from trade events alone, written from DESIGN.md's rules ("Trades",
 * "Positions", "Ledger") and sharing no code with processors/trades: the demo's summary and the trades tests check
 * the application against it.
 * - the live set of an (account, instrument) is the latest version of every trade not cancelled;
 * - a position is FIFO over the live set in (tradeTime, tradeId) order: quantity, cost basis, realised P&L, the
 *   average cost rounded half-even at scale 6;
 * - the ledger's net per (trade, ledger account) is the legs of the trade's current live version.
 * Quantities are bigint at scale 4, prices at scale 6, amounts at scale 10.
 */
import type { TradeEvent } from '../../../schemas/types.js';

/**
 * The final live set of every (account, instrument) a trade ever touched (key `account|instrument`, possibly empty),
 * and the latest version of every trade (key `account/tradeId`), from the unique, valid events in arrival order.
 */
export function finalLiveSets(unique: readonly TradeEvent[]): { live: Map<string, TradeEvent[]>; latest: Map<string, TradeEvent> } {
  const latest = new Map<string, TradeEvent>();
  const live = new Map<string, TradeEvent[]>();
  for (const e of unique) {
    latest.set(`${e.accountId}/${e.tradeId}`, e);
    live.set(`${e.accountId}|${e.instrument}`, []);
  }
  for (const e of latest.values()) if (e.type !== 'CANCEL') live.get(`${e.accountId}|${e.instrument}`)!.push(e);
  return { live, latest };
}

export interface ModelPosition {
  quantity: bigint;
  costBasis: bigint;
  averageCost: bigint | null;
  realisedPnl: bigint;
  openLots: number;
  liveTrades: number;
}

/** FIFO with unsigned lot sizes and one direction for the whole book (+1 long, −1 short). */
export function modelPosition(trades: readonly TradeEvent[]): ModelPosition {
  const ordered = [...trades].sort((a, b) => a.tradeTime - b.tradeTime || (a.tradeId < b.tradeId ? -1 : a.tradeId > b.tradeId ? 1 : 0));
  const book: Array<{ size: bigint; price: bigint }> = [];
  let direction = 0n;
  let pnl = 0n;
  for (const t of ordered) {
    const d = t.side === 'BUY' ? 1n : -1n;
    let left = t.quantity;
    while (left > 0n && book.length > 0 && direction !== d) {
      const head = book[0]!;
      const take = left < head.size ? left : head.size;
      const [buyPrice, sellPrice] = d === 1n ? [t.price, head.price] : [head.price, t.price];
      pnl += (sellPrice - buyPrice) * take;
      head.size -= take;
      left -= take;
      if (head.size === 0n) book.shift();
    }
    if (book.length === 0) direction = 0n;
    if (left > 0n) {
      direction = d;
      book.push({ size: left, price: t.price });
    }
  }
  const size = book.reduce((s, l) => s + l.size, 0n);
  const cost = book.reduce((s, l) => s + l.size * l.price, 0n);
  let averageCost: bigint | null = null;
  if (size > 0n) {
    // cost has scale 10, size scale 4: cost / size is at scale 6; round half to even.
    const whole = cost / size;
    const rest = cost - whole * size;
    averageCost = rest * 2n < size ? whole : rest * 2n > size ? whole + 1n : whole + (whole & 1n);
  }
  return { quantity: direction * size, costBasis: direction * cost, averageCost, realisedPnl: pnl, openLots: book.length, liveTrades: trades.length };
}

/** Signed ledger net (debit +, credit −) per `<tradeId> <ledger account>` that the final live versions stand for. */
export function modelLedgerNet(latest: ReadonlyMap<string, TradeEvent>): Map<string, bigint> {
  const net = new Map<string, bigint>();
  for (const e of latest.values()) {
    if (e.type === 'CANCEL') continue;
    const amount = e.quantity * e.price;
    const securities = e.side === 'BUY' ? amount : -amount;
    net.set(`${e.tradeId} securities:${e.accountId}:${e.instrument}`, securities);
    net.set(`${e.tradeId} cash:${e.accountId}:${e.currency}`, -securities);
  }
  return net;
}

/** How many ledger entries the events post: two legs per version, and two reversals per amend or cancel. */
export function expectedLedgerEntries(unique: readonly TradeEvent[]): number {
  let n = 0;
  for (const e of unique) n += e.type === 'NEW' ? 2 : e.type === 'AMEND' ? 4 : 2;
  return n;
}
