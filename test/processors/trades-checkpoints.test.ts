/**
 * Property test of the trades processor's checkpointed suffix recompute: random NEW / AMEND (terms, side, time and
 * instrument moves) / CANCEL / late NEW sequences, with currency mismatches the processor must refuse, over a few
 * accounts and instruments, run with a small checkpoint spacing K. Every event's positions must equal an
 * independent FIFO over the live set at that point (cli/demo/recompute/trades.ts, which shares no code with the
 * processor); every output (positions, ledger entries, dead letters) must equal a run that never checkpoints (each
 * edit replays the whole live set, as the processor did before checkpoints); a restore from the changelogs midway
 * (the checkpoint store included) must change nothing.
 */
import { describe, expect, it } from 'vitest';
import { TopologyTestDriver } from '../../index.js';
import { tradesTopology, TradesStores, TradesTopics } from '../../topologies/trades.js';
import type { TradeEvent } from '../../schemas/types.js';
import { mulberry32 } from '../../cli/generators/random.js';
import { modelLedgerNet, modelPosition, type ModelPosition } from '../../cli/demo/recompute/trades.js';
import { compareTradeOrder, liveKey } from '../../processors/trades/trade-state.js';
import type { PositionState } from '../../processors/trades/positions.js';
import { outputs, pipe, tradesSerdes, type Outputs } from '../fixtures/trades-driver.js';

const PARTITIONS = 2;
/** checkpointEvery for the reference run: never reached, so every edit replays the whole live set */
const NEVER = Number.MAX_SAFE_INTEGER;

const INSTRUMENTS: Record<string, { currency: string; price: bigint }> = {
  X: { currency: 'USD', price: 100_000000n },
  Y: { currency: 'USD', price: 20_000000n },
  Z: { currency: 'EUR', price: 55_000000n },
};
const OTHER_CURRENCY: Record<string, string> = { USD: 'EUR', EUR: 'USD' };

type Terms = Pick<TradeEvent, 'instrument' | 'side' | 'quantity' | 'price' | 'currency' | 'tradeTime'>;

interface Expected {
  /** the accepted events, in arrival order */
  accepted: TradeEvent[];
  rejected: number;
  /** per accepted event, the positions it must emit: key, cause and the model's figures */
  positions: Array<{ key: string; lastTradeId: string; lastTradeVersion: number } & ModelPosition>;
  /** latest version of every trade (key `account/tradeId`), for the ledger nets */
  latest: Map<string, TradeEvent>;
}

/**
 * A seeded random stream, and what it must produce according to DESIGN.md's rules alone. The generator keeps its
 * own live sets; an event that would put two currencies into one (account, instrument) live set is expected to be
 * refused and changes nothing.
 */
function scenario(seed: number, n: number): { events: TradeEvent[]; expected: Expected } {
  const rnd = mulberry32(seed);
  const int = (min: number, max: number) => min + Math.floor(rnd() * (max - min + 1));
  const pick = <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)]!;
  const accounts = ['A', 'B', 'C'];
  const instruments = Object.keys(INSTRUMENTS);
  /** live trades by `account/tradeId` (their current version's event), and every trade's version */
  const live = new Map<string, TradeEvent>();
  const versions = new Map<string, number>();
  const events: TradeEvent[] = [];
  const expected: Expected = { accepted: [], rejected: 0, positions: [], latest: new Map() };
  let clock = 1_700_000_000_000;
  let seq = 0;

  // Coarse tradeTimes (a 1 s grid, a few events per second), so (tradeTime, tradeId) ties happen often.
  const grid = (t: number) => t - (t % 1000);
  const liveSet = (account: string, instrument: string) =>
    [...live.values()].filter((t) => t.accountId === account && t.instrument === instrument);
  const newTerms = (instrument: string, tradeTime: number): Terms => ({
    instrument,
    side: rnd() < 0.55 ? 'BUY' : 'SELL',
    quantity: BigInt(int(1, 50)) * 10_000n + (rnd() < 0.3 ? BigInt(int(1, 9_999)) : 0n),
    price: (INSTRUMENTS[instrument]!.price * BigInt(int(80, 120))) / 100n + BigInt(int(0, 99)),
    currency: INSTRUMENTS[instrument]!.currency,
    tradeTime,
  });

  for (let i = 0; i < n; i++) {
    clock += int(100, 400);
    const accountId = pick(accounts);
    const mine = [...live.values()].filter((t) => t.accountId === accountId);
    const r = rnd();
    const base = { eventId: `s${seed}-${i}`, accountId, eventTime: clock };
    let e: TradeEvent;
    if (r < 0.3 && mine.length > 0) {
      // AMEND: terms, side, a time move (either way, sometimes far), or an instrument move.
      const t = pick(mine);
      const terms: Terms = { instrument: t.instrument, side: t.side, quantity: t.quantity, price: t.price, currency: t.currency, tradeTime: t.tradeTime };
      const what = rnd();
      if (what < 0.15) Object.assign(terms, newTerms(pick(instruments), terms.tradeTime), { side: terms.side });
      else if (what < 0.35) terms.price = newTerms(terms.instrument, 0).price;
      else if (what < 0.55) terms.quantity = newTerms(terms.instrument, 0).quantity;
      else if (what < 0.65) terms.side = terms.side === 'BUY' ? 'SELL' : 'BUY';
      else terms.tradeTime = grid(terms.tradeTime + (rnd() < 0.7 ? int(-5_000, 5_000) : int(-600_000, 600_000)));
      if (rnd() < 0.02) terms.currency = OTHER_CURRENCY[terms.currency]!; // must be refused (unless alone)
      e = { ...base, tradeId: t.tradeId, type: 'AMEND', version: versions.get(`${accountId}/${t.tradeId}`)! + 1, ...terms };
    } else if (r < 0.42 && mine.length > 0) {
      // CANCEL, repeating the terms.
      const t = pick(mine);
      e = { ...t, ...base, tradeId: t.tradeId, type: 'CANCEL', version: versions.get(`${accountId}/${t.tradeId}`)! + 1 };
    } else {
      // NEW, now (the usual append) or late (anywhere in the recent past, sometimes far back).
      const late = rnd() < 0.25;
      const tradeTime = grid(clock - (late ? (rnd() < 0.8 ? int(0, 20_000) : int(0, 1_000_000)) : int(0, 1500)));
      const tradeId = `T${int(0, 0xfff).toString(16)}-${++seq}`;
      const terms = newTerms(pick(instruments), tradeTime);
      if (rnd() < 0.02) terms.currency = OTHER_CURRENCY[terms.currency]!; // must be refused (unless alone)
      e = { ...base, tradeId, type: 'NEW', version: 1, ...terms };
    }
    events.push(e);

    // Apply by the rules; refuse a second currency in a live set.
    const key = `${accountId}/${e.tradeId}`;
    const before = live.get(key);
    if (e.type === 'CANCEL') live.delete(key);
    else live.set(key, e);
    const touched = [...new Set([before?.instrument, e.type === 'CANCEL' ? undefined : e.instrument].filter((x): x is string => x !== undefined))];
    if (touched.some((ins) => new Set(liveSet(accountId, ins).map((t) => t.currency)).size > 1)) {
      if (before) live.set(key, before);
      else live.delete(key);
      expected.rejected++;
      continue;
    }
    versions.set(key, e.version);
    expected.accepted.push(e);
    expected.latest.set(key, e);
    for (const ins of touched) {
      expected.positions.push({ key: `${accountId}|${ins}`, lastTradeId: e.tradeId, lastTradeVersion: e.version, ...modelPosition(liveSet(accountId, ins)) });
    }
  }
  return { events, expected };
}

function newDriver(checkpointEvery: number, log?: TopologyTestDriver['log']): TopologyTestDriver {
  return new TopologyTestDriver(tradesTopology({ serdes: tradesSerdes, backend: 'memory', checkpointEvery }), {
    partitions: { [TradesTopics.input]: PARTITIONS, [TradesTopics.positions]: PARTITIONS, [TradesTopics.ledger]: PARTITIONS },
    processingErrorPolicy: 'fail',
    log,
  });
}

/** The checkpoint store's entries, and the checkpoint keys the position states list, over all partitions. */
interface Checkpoints {
  stored: Map<string, PositionState>;
  listed: string[];
}

async function run(events: readonly TradeEvent[], checkpointEvery: number, restoreAt?: number): Promise<Outputs & Checkpoints> {
  let driver = newDriver(checkpointEvery);
  if (restoreAt !== undefined) {
    await pipe(driver, events.slice(0, restoreAt));
    await driver.close();
    driver = newDriver(checkpointEvery, driver.log); // no state directory: every store comes back from its changelog
    await pipe(driver, events.slice(restoreAt));
  } else {
    await pipe(driver, events);
  }
  const result = await outputs(driver);
  const stored = new Map<string, PositionState>();
  const listed: string[] = [];
  for (let p = 0; p < PARTITIONS; p++) {
    for await (const { key, value } of (await driver.getStore<string, PositionState>(TradesStores.checkpoints, p)).all()) stored.set(key, value);
    for await (const { key, value } of (await driver.getStore<string, PositionState>(TradesStores.positions, p)).all()) {
      const [account, instrument] = key.split('\u0000') as [string, string];
      for (const c of value.checkpoints ?? []) listed.push(liveKey(account, { instrument, ...c }));
    }
  }
  await driver.close();
  return { ...result, stored, listed };
}

/** Per output record, the position figures and cause, in the order the processor emitted them (one partition's order per key). */
function positionsOf(o: Outputs) {
  return o.positions.map((r) => ({
    key: r.key,
    lastTradeId: r.value.lastTradeId,
    lastTradeVersion: r.value.lastTradeVersion,
    quantity: r.value.quantity,
    costBasis: r.value.costBasis,
    averageCost: r.value.averageCost,
    realisedPnl: r.value.realisedPnl,
    openLots: r.value.openLots,
    liveTrades: r.value.liveTrades,
  }));
}

/** Records grouped per key, keeping their order: outputs of different partitions interleave differently. */
function byKey<T extends { key: string }>(records: readonly T[]): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const r of records) m.set(r.key, [...(m.get(r.key) ?? []), r]);
  return new Map([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

describe('trades checkpointed recompute equals a from-scratch recompute', () => {
  const N = 2500;
  it.each([
    { seed: 1, k: 2 },
    { seed: 2, k: 3 },
    { seed: 3, k: 5 },
    { seed: 4, k: 2, restore: true },
  ])('seed $seed, K = $k', async ({ seed, k, restore }) => {
    const { events, expected } = scenario(seed, N);
    // The scenario must exercise what checkpoints change: edits, late trades, moves and refusals.
    expect(expected.accepted.filter((e) => e.type === 'AMEND').length).toBeGreaterThan(N / 5);
    expect(expected.accepted.filter((e) => e.type === 'CANCEL').length).toBeGreaterThan(N / 20);
    expect(expected.rejected).toBeGreaterThan(5);

    const checkpointed = await run(events, k, restore ? Math.floor(N / 2) : undefined);
    // The checkpoints left at the end: exactly the listed ones (no stale entry left behind), each the FIFO of the
    // final live set up to its trade, after every K-th live trade.
    expect(checkpointed.stored.size).toBeGreaterThan(50);
    expect([...checkpointed.stored.keys()].sort()).toEqual([...checkpointed.listed].sort());
    const finalLive = [...expected.latest.values()].filter((e) => e.type !== 'CANCEL');
    for (const [key, state] of checkpointed.stored) {
      const [account, instrument] = key.split('\u0000') as [string, string];
      const upTo = finalLive.filter((t) => t.accountId === account && t.instrument === instrument && compareTradeOrder(t, state.last!) <= 0);
      const m = modelPosition(upTo);
      expect(state.liveTrades % k, key).toBe(0);
      expect({ key, liveTrades: state.liveTrades, quantity: state.lots.reduce((s, l) => s + l.quantity, 0n), realisedPnl: state.realisedPnl, openLots: state.lots.length })
        .toEqual({ key, liveTrades: m.liveTrades, quantity: m.quantity, realisedPnl: m.realisedPnl, openLots: m.openLots });
    }
    expect(checkpointed.dlq).toHaveLength(expected.rejected);
    // Every event's positions against the independent FIFO over the live set at that point.
    expect(byKey(positionsOf(checkpointed))).toEqual(byKey(expected.positions));
    // The ledger nets of the final live versions.
    const net = new Map<string, bigint>();
    for (const { value: l } of checkpointed.ledger) {
      const k2 = `${l.tradeId} ${l.ledgerAccount}`;
      net.set(k2, (net.get(k2) ?? 0n) + (l.side === 'DEBIT' ? l.amount : -l.amount));
    }
    const model = modelLedgerNet(expected.latest);
    for (const [k2, v] of model) expect(net.get(k2), k2).toBe(v);
    for (const [k2, v] of net) if (!model.has(k2)) expect(v, k2).toBe(0n);

    // Byte for byte what a run without checkpoints (a full replay per edit) emits.
    const reference = await run(events, NEVER);
    expect(reference.stored.size).toBe(0);
    expect(checkpointed.positions).toEqual(reference.positions);
    expect(checkpointed.ledger).toEqual(reference.ledger);
    expect(checkpointed.dlq.map((r) => [r.key, r.value])).toEqual(reference.dlq.map((r) => [r.key, r.value]));
  }, 120_000);
});
