import type { TradeEvent } from '../../schemas/types.js';
import { mulberry32 as prng } from './random.js';

/**
 * A seeded, deterministic stream of trade events (the same seed gives the same events), shaped like a prime
 * broker's flow:
 * - several accounts and instruments, both skewed (a few accounts and instruments carry most trades);
 * - BUY and SELL (buys slightly favoured), so positions go long, flat and short;
 * - NEW, AMEND (full new terms — price, quantity, sometimes the side, the tradeTime, rarely the instrument) and
 *   CANCEL (repeating the cancelled terms), each at the trade's next version. As in real trading, amends and
 *   cancels mostly hit one of the account's latest bookings (geometric over its newest live trades, mean
 *   RECENT_EDIT_MEAN back); a small share (`oldEditRate`, default 3 %) hits any older live trade: a history edit;
 * - late bookings: a NEW whose tradeTime lies a span of recent trades back (LATE_SPAN_EVENTS: tens to hundreds of
 *   events of the stream), before trades that arrived earlier (different trades out of order; one trade's versions
 *   always arrive in order, as they share the account key); an amend that moves the tradeTime moves it by such a
 *   span too, either way;
 * - tradeTime on a 10 s grid, so ties broken by tradeId happen; tradeIds are not in booking order;
 * - duplicates: an earlier event re-sent unchanged (same eventId) a little later.
 * Quantities are bigint at scale 4 and prices at scale 6; eventTime rises strictly with arrival (a duplicate keeps
 * its original's eventTime).
 */
export interface TradesGeneratorOptions {
  seed: number;
  /** Number of events before duplicates are added. */
  events: number;
  accounts?: number;
  instruments?: number;
  amendRate?: number;
  cancelRate?: number;
  duplicateRate?: number;
  lateBookingRate?: number;
  /** Share of amends and cancels that hit any live trade of the account rather than one of its latest; default 0.03. */
  oldEditRate?: number;
  startTime?: number;
  /** Largest event-time step between consecutive events (ms); each step is 1..maxGapMs. Default 5000. */
  maxGapMs?: number;
}

export interface GeneratedTrades {
  /** Arrival order, duplicates included. */
  events: TradeEvent[];
  /** Arrival order without the duplicates. */
  unique: TradeEvent[];
  /** How many duplicates `events` holds. */
  duplicates: number;
  counts: { NEW: number; AMEND: number; CANCEL: number };
}

/** Instruments and the one currency each trades in, most traded first. */
export const INSTRUMENTS: ReadonlyArray<{ instrument: string; currency: string; price: bigint }> = [
  { instrument: 'AAPL', currency: 'USD', price: 190_000000n },
  { instrument: 'SAP', currency: 'EUR', price: 120_000000n },
  { instrument: 'MSFT', currency: 'USD', price: 410_000000n },
  { instrument: 'VOD', currency: 'GBP', price: 1_000000n },
  { instrument: 'ASML', currency: 'EUR', price: 650_000000n },
  { instrument: 'NESN', currency: 'CHF', price: 95_000000n },
  { instrument: 'TSLA', currency: 'USD', price: 240_000000n },
  { instrument: 'BMW', currency: 'EUR', price: 88_000000n },
  // beyond the default six/eight: for `weir produce --generate trades`, which trades a wider book
  { instrument: 'HSBA', currency: 'GBP', price: 6_500000n },
  { instrument: 'NOVN', currency: 'CHF', price: 88_500000n },
  { instrument: 'AMZN', currency: 'USD', price: 185_250000n },
  { instrument: 'SIE', currency: 'EUR', price: 178_400000n },
  { instrument: 'SHEL', currency: 'GBP', price: 27_150000n },
  { instrument: 'NVDA', currency: 'USD', price: 121_780000n },
  { instrument: 'TTE', currency: 'EUR', price: 61_020000n },
  { instrument: 'ROG', currency: 'CHF', price: 254_600000n },
  { instrument: 'JPM', currency: 'USD', price: 201_330000n },
  { instrument: 'AZN', currency: 'GBP', price: 118_420000n },
  { instrument: 'ALV', currency: 'EUR', price: 262_900000n },
  { instrument: 'KO', currency: 'USD', price: 62_410000n },
];


/** Mean distance (in the account's bookings, newest = 0) of the live trade an amend or cancel usually hits. */
export const RECENT_EDIT_MEAN = 4;
/** How many events of the stream back a late booking's tradeTime (or a tradeTime amend) reaches: uniform in this range. */
export const LATE_SPAN_EVENTS = { min: 20, max: 400 } as const;

interface GenTrade {
  accountId: string;
  tradeId: string;
  version: number;
  live: boolean;
  terms: Pick<TradeEvent, 'instrument' | 'side' | 'quantity' | 'price' | 'currency' | 'tradeTime'>;
}

export function generateTrades(opts: TradesGeneratorOptions): GeneratedTrades {
  const rnd = prng(opts.seed);
  const int = (min: number, max: number) => min + Math.floor(rnd() * (max - min + 1));
  /** Index drawn with weight 1/(i+1) (Zipf-like skew). */
  const skewed = (n: number) => {
    const weights = Array.from({ length: n }, (_, i) => 1 / (i + 1));
    let x = rnd() * weights.reduce((s, w) => s + w, 0);
    for (let i = 0; i < n; i++) if ((x -= weights[i]!) < 0) return i;
    return n - 1;
  };
  const accounts = Array.from({ length: opts.accounts ?? 6 }, (_, i) => `ACC-${String(i + 1).padStart(2, '0')}`);
  const instruments = INSTRUMENTS.slice(0, opts.instruments ?? 6);
  const amendRate = opts.amendRate ?? 0.15;
  const cancelRate = opts.cancelRate ?? 0.06;
  const duplicateRate = opts.duplicateRate ?? 0.05;
  const lateBookingRate = opts.lateBookingRate ?? 0.1;
  const maxGapMs = opts.maxGapMs ?? 5_000;
  const oldEditRate = opts.oldEditRate ?? 0.03;

  const trades = new Map<string, GenTrade>();
  const liveByAccount = new Map<string, string[]>(accounts.map((a) => [a, []]));
  const unique: TradeEvent[] = [];
  const events: TradeEvent[] = [];
  const counts = { NEW: 0, AMEND: 0, CANCEL: 0 };
  let duplicates = 0;
  let clock = opts.startTime ?? Date.UTC(2025, 0, 6, 9, 0, 0);
  let seq = 0;
  // The event clock of the last LATE_SPAN_EVENTS.max events (a ring), so lateness can be a span of recent trades.
  const recentClocks: number[] = new Array<number>(LATE_SPAN_EVENTS.max + 1);
  const clock0 = clock;
  /** The event clock `back` events ago (the stream's start before its first event). */
  const clockAgo = (i: number, back: number) => (i - back >= 0 ? recentClocks[(i - back) % recentClocks.length]! : clock0);
  /** Index into `live` of the trade an amend or cancel hits: mostly one of the newest (geometric), sometimes any. */
  const editTarget = (live: readonly string[]) => {
    if (rnd() < oldEditRate) return int(0, live.length - 1);
    const back = Math.floor(Math.log(1 - rnd()) / Math.log(RECENT_EDIT_MEAN / (RECENT_EDIT_MEAN + 1)));
    return Math.max(0, live.length - 1 - back);
  };

  const grid = (t: number) => t - (t % 10_000);
  const quantity = () => BigInt(int(1, 5_000)) * 10_000n + BigInt(rnd() < 0.5 ? 0 : int(1, 9_999)); // 0.0001 .. 5000.9999 units
  /** A price (scale 6) within ±20 % of `base`, exact. */
  const priceNear = (base: bigint) => (base * BigInt(800_000 + int(0, 400_000))) / 1_000_000n;
  const emit = (e: TradeEvent) => {
    unique.push(e);
    events.push(e);
    counts[e.type]++;
  };

  for (let i = 0; i < opts.events; i++) {
    clock += int(1, maxGapMs);
    recentClocks[i % recentClocks.length] = clock;
    const accountId = accounts[skewed(accounts.length)]!;
    const live = liveByAccount.get(accountId)!;
    const r = rnd();
    const eventId = `ev-${opts.seed}-${i}`;

    if (r < amendRate && live.length > 0) {
      // Amend a live trade of the account: mostly a recent one, sometimes an old one (a history edit).
      const t = trades.get(live[editTarget(live)]!)!;
      const terms = { ...t.terms };
      const what = rnd();
      if (what < 0.03) {
        const moved = instruments[skewed(instruments.length)]!;
        terms.instrument = moved.instrument;
        terms.currency = moved.currency;
        terms.price = priceNear(moved.price);
      } else if (what < 0.35) terms.price = priceNear(t.terms.price);
      else if (what < 0.65) terms.quantity = quantity();
      else if (what < 0.75) terms.side = terms.side === 'BUY' ? 'SELL' : 'BUY';
      else {
        const span = clock - clockAgo(i, int(LATE_SPAN_EVENTS.min, LATE_SPAN_EVENTS.max));
        terms.tradeTime = grid(terms.tradeTime + (rnd() < 0.5 ? -span : span));
      }
      t.version++;
      t.terms = terms;
      emit({ eventId, accountId, tradeId: t.tradeId, type: 'AMEND', version: t.version, ...terms, eventTime: clock });
    } else if (r < amendRate + cancelRate && live.length > 0) {
      const idx = editTarget(live);
      const t = trades.get(live[idx]!)!;
      live.splice(idx, 1);
      t.version++;
      t.live = false;
      emit({ eventId, accountId, tradeId: t.tradeId, type: 'CANCEL', version: t.version, ...t.terms, eventTime: clock });
    } else {
      const inst = instruments[skewed(instruments.length)]!;
      const late = rnd() < lateBookingRate;
      const tradeTime = grid(late ? clockAgo(i, int(LATE_SPAN_EVENTS.min, LATE_SPAN_EVENTS.max)) : clock - int(0, 20_000));
      // Not in booking order, so (tradeTime, tradeId) ties are broken by something other than arrival.
      const tradeId = `${accountId}-${int(0, 0xffff).toString(16).padStart(4, '0')}-${++seq}`;
      const terms = { instrument: inst.instrument, side: rnd() < 0.55 ? 'BUY' : 'SELL', quantity: quantity(), price: priceNear(inst.price), currency: inst.currency, tradeTime } as const;
      trades.set(tradeId, { accountId, tradeId, version: 1, live: true, terms: { ...terms } });
      live.push(tradeId);
      emit({ eventId, accountId, tradeId, type: 'NEW', version: 1, ...terms, eventTime: clock });
    }

    // A producer retry: re-send one of the last 50 events unchanged.
    if (rnd() < duplicateRate) {
      const from = Math.max(0, unique.length - 50);
      events.push({ ...unique[int(from, unique.length - 1)]! });
      duplicates++;
    }
  }
  return { events, unique, duplicates, counts };
}
