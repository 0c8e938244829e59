import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TopologyTestDriver, type TestOutputRecord } from '../../index.js';
import { StateDirectory } from '../../state/state-directory.js';
import { duplicatesCounted } from '../../processors/dedupe.js';
import { tradesTopology, TradesStores, TradesTopics } from '../../topologies/trades.js';
import avro from 'avsc';
import { contractOf } from '../../schemas/catalog.js';
import { logicalTypes } from '../../schemas/decimal.js';
import type { LedgerEntry, Position, TradeEvent } from '../../schemas/types.js';
import { generateTrades, INSTRUMENTS, type GeneratedTrades } from '../fixtures/trades-generator.js';
import { applyTradeEvent, compareTradeOrder, liveKey, type TradeRecord } from '../../processors/trades/trade-state.js';
import { averageCostOf, divideHalfEven, matchFifo } from '../../processors/trades/positions.js';
import { validateTradeEvent } from '../../processors/trades/validate-trade.js';
import { finalLiveSets, modelLedgerNet, modelPosition, type ModelPosition } from '../../cli/demo/recompute/trades.js';
import { TradeRejectedError } from '../../processors/trades/errors.js';
import { outputs, pipe, tradesSerdes, type Outputs } from '../fixtures/trades-driver.js';

type Backend = 'memory' | 'rocksdb';

const PARTITIONS = 4;

const tempDirs: string[] = [];
afterAll(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

function newDriver(backend: Backend, opts: { log?: TopologyTestDriver['log']; checkpointEvery?: number } = {}): TopologyTestDriver {
  let stateDirectory: StateDirectory | undefined;
  if (backend === 'rocksdb') {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'weir-trades-'));
    tempDirs.push(dir);
    stateDirectory = new StateDirectory(dir, 'test-app');
  }
  const checkpoints = opts.checkpointEvery === undefined ? {} : { checkpointEvery: opts.checkpointEvery };
  return new TopologyTestDriver(tradesTopology({ serdes: tradesSerdes, backend, ...checkpoints }), {
    partitions: { [TradesTopics.input]: PARTITIONS, [TradesTopics.positions]: PARTITIONS, [TradesTopics.ledger]: PARTITIONS },
    stateDirectory,
    // The default policy: rejections are RecordRejectedErrors and dead-letter anyway; anything else must stop the test.
    processingErrorPolicy: 'fail',
    log: opts.log,
  });
}

async function totalDuplicates(driver: TopologyTestDriver): Promise<number> {
  let n = 0;
  for (let p = 0; p < PARTITIONS; p++) n += await duplicatesCounted(await driver.getStore(TradesStores.dedupe, p));
  return n;
}

// ---------------------------------------------------------------------------------------------------------------
// The independent model (cli/demo/recompute/trades.ts, which the demo's summary uses too): written from DESIGN.md's
// rules alone, sharing no code with processors/trades.

function lastPerKey<V>(records: ReadonlyArray<TestOutputRecord<string, V>>): Map<string, V> {
  const last = new Map<string, V>();
  for (const r of records) last.set(r.key, r.value);
  return last;
}

// ---------------------------------------------------------------------------------------------------------------

describe.each([
  { backend: 'memory', checkpointEvery: undefined },
  // a small checkpoint spacing, so checkpoints (and their restore from the changelog) are exercised on RocksDB too
  { backend: 'rocksdb', checkpointEvery: 4 },
] as const)('trades topology on generated trades, $backend stores, checkpoint every $checkpointEvery', ({ backend, checkpointEvery }) => {
  const gen: GeneratedTrades = generateTrades({ seed: 20250106, events: 3000 });
  let out: Outputs;
  let duplicates: number;

  it('processes the generated stream without dead letters', async () => {
    expect(gen.duplicates).toBeGreaterThan(50);
    expect(gen.counts.AMEND).toBeGreaterThan(200);
    expect(gen.counts.CANCEL).toBeGreaterThan(50);
    const driver = newDriver(backend, { checkpointEvery });
    await pipe(driver, gen.events);
    out = await outputs(driver);
    duplicates = await totalDuplicates(driver);
    await driver.close();
    expect(out.dlq).toEqual([]);
  }, 120_000);

  it('(1) emits positions equal to an independent FIFO over the final live sets', () => {
    const { live } = finalLiveSets(gen.unique);
    const last = lastPerKey(out.positions);
    expect([...last.keys()].sort()).toEqual([...live.keys()].sort());
    let shorts = 0;
    for (const [key, trades] of live) {
      const [accountId, instrument] = key.split('|') as [string, string];
      const p = last.get(key)!;
      const m = modelPosition(trades);
      expect({ key, ...pick(p) }, key).toEqual({ key, ...m });
      expect(p.accountId).toBe(accountId);
      expect(p.instrument).toBe(instrument);
      expect(p.currency).toBe(INSTRUMENTS.find((i) => i.instrument === instrument)!.currency);
      if (m.quantity < 0n) shorts++;
    }
    // The stream is meant to exercise short books and partial closes, not just long accumulation.
    expect(shorts).toBeGreaterThan(0);
    expect(out.positions.filter((r) => r.value.realisedPnl !== 0n).length).toBeGreaterThan(100);
    // One position per applied event, plus one for each amend that moved a trade to another instrument.
    const moves = movedAmends(gen.unique);
    expect(moves).toBeGreaterThan(0);
    expect(out.positions).toHaveLength(gen.unique.length + moves);
    for (const r of out.positions) expect(r.key).toBe(`${r.value.accountId}|${r.value.instrument}`);
  });

  it('(2) keeps the ledger balanced, reversals pointing at existing entries, nets equal to the live versions', () => {
    const entries = out.ledger.map((r) => r.value);
    for (const r of out.ledger) expect(r.key).toBe(r.value.accountId);
    expect(entries).toHaveLength(2 * gen.counts.NEW + 4 * gen.counts.AMEND + 2 * gen.counts.CANCEL);

    // No entryId twice; ids are derived as the schema says.
    const byId = new Map<string, { entry: LedgerEntry; index: number }>();
    entries.forEach((entry, index) => {
      expect(byId.has(entry.entryId), entry.entryId).toBe(false);
      byId.set(entry.entryId, { entry, index });
      const leg = entry.ledgerAccount.split(':')[0];
      expect(entry.entryId).toBe(`${entry.tradeId}:${entry.tradeVersion}:${leg}${entry.reverses ? ':reversal' : ''}`);
    });

    // Per trade, version and kind (posting or reversal), and per currency overall: debits = credits.
    const sums = new Map<string, bigint>();
    const add = (k: string, v: bigint) => sums.set(k, (sums.get(k) ?? 0n) + v);
    for (const e of entries) {
      const signed = e.side === 'DEBIT' ? e.amount : -e.amount;
      add(`trade ${e.accountId} ${e.tradeId} v${e.tradeVersion} ${e.reverses ? 'reversal' : 'posting'}`, signed);
      add(`currency ${e.currency}`, signed);
      expect(e.amount).toBeGreaterThanOrEqual(0n);
    }
    for (const [k, v] of sums) expect(v, k).toBe(0n);
    expect([...sums.keys()].filter((k) => k.startsWith('currency')).length).toBeGreaterThan(1);

    // Each amend and cancel reversed both legs of the previous version: each reversal names an earlier entry of
    // the same ledger account, amount and version, on the opposite side, and no entry is reversed twice.
    const reversals = entries.filter((e) => e.reverses !== null);
    expect(reversals).toHaveLength(2 * (gen.counts.AMEND + gen.counts.CANCEL));
    const reversed = new Set<string>();
    entries.forEach((e, index) => {
      if (e.reverses === null) return;
      const target = byId.get(e.reverses);
      expect(target, `${e.entryId} reverses a missing entry`).toBeDefined();
      expect(target!.index).toBeLessThan(index);
      expect(target!.entry.reverses).toBeNull();
      expect([e.ledgerAccount, e.amount, e.currency, e.tradeVersion, e.tradeId]).toEqual([
        target!.entry.ledgerAccount, target!.entry.amount, target!.entry.currency, target!.entry.tradeVersion, target!.entry.tradeId,
      ]);
      expect(e.side).not.toBe(target!.entry.side);
      expect(reversed.has(e.reverses)).toBe(false);
      reversed.add(e.reverses);
    });

    // postedAt is the eventTime of the event that caused the entry (a reversal: the next version's event).
    const eventTime = new Map(gen.unique.map((e) => [`${e.accountId} ${e.tradeId} ${e.version}`, e.eventTime]));
    for (const e of entries) {
      expect(e.postedAt).toBe(eventTime.get(`${e.accountId} ${e.tradeId} ${e.tradeVersion + (e.reverses ? 1 : 0)}`));
    }

    // The net per (trade, ledger account) equals the current live version's legs, zero for cancelled trades.
    const net = new Map<string, bigint>();
    for (const e of entries) {
      const k = `${e.tradeId} ${e.ledgerAccount}`;
      net.set(k, (net.get(k) ?? 0n) + (e.side === 'DEBIT' ? e.amount : -e.amount));
    }
    for (const [k, v] of net) if (v === 0n) net.delete(k);
    const expected = modelLedgerNet(finalLiveSets(gen.unique).latest);
    expect(net).toEqual(expected);
  });

  it('(3) ignores duplicates exactly and counts them', async () => {
    expect(duplicates).toBe(gen.duplicates);
    // the default checkpoint spacing here: on RocksDB (K = 4 above) this also checks that K changes no output
    const driver = newDriver(backend);
    await pipe(driver, gen.unique);
    const clean = await outputs(driver);
    expect(await totalDuplicates(driver)).toBe(0);
    await driver.close();
    expect(out.positions).toEqual(clean.positions);
    expect(out.ledger).toEqual(clean.ledger);
  }, 120_000);

  it('writes records that its Avro contracts accept, decimals exact', () => {
    if (backend !== 'memory') return;
    const typeOf = (topic: string) => avro.Type.forSchema(contractOf(topic).valueSchema as avro.Schema, { logicalTypes });
    const checks: Array<[string, readonly unknown[]]> = [
      [TradesTopics.input, gen.events],
      [TradesTopics.positions, out.positions.map((r) => r.value)],
      [TradesTopics.ledger, out.ledger.map((r) => r.value)],
    ];
    for (const [topic, values] of checks) {
      const type = typeOf(topic);
      for (const v of values) expect(type.fromBuffer(type.toBuffer(v)), topic).toEqual(v);
    }
  });

  it('gives the same outputs after its stores are restored from the changelogs midway', async () => {
    const half = Math.floor(gen.events.length / 2);
    const first = newDriver(backend, { checkpointEvery });
    await pipe(first, gen.events.slice(0, half));
    await first.close();
    // A fresh state directory: everything comes back from the changelog topics.
    const second = newDriver(backend, { log: first.log, checkpointEvery });
    await pipe(second, gen.events.slice(half));
    const resumed = await outputs(second);
    expect(await totalDuplicates(second)).toBe(gen.duplicates);
    await second.close();
    expect(resumed.positions).toEqual(out.positions);
    expect(resumed.ledger).toEqual(out.ledger);
  }, 120_000);
});

function pick(p: Position): ModelPosition {
  return { quantity: p.quantity, costBasis: p.costBasis, averageCost: p.averageCost, realisedPnl: p.realisedPnl, openLots: p.openLots, liveTrades: p.liveTrades };
}

function movedAmends(unique: readonly TradeEvent[]): number {
  const instrumentOf = new Map<string, string>();
  let moves = 0;
  for (const e of unique) {
    const k = `${e.accountId}/${e.tradeId}`;
    if (e.type === 'AMEND' && instrumentOf.get(k) !== e.instrument) moves++;
    instrumentOf.set(k, e.instrument);
  }
  return moves;
}

// ---------------------------------------------------------------------------------------------------------------
// Targeted cases, with readable numbers. Quantities at scale 4, prices at scale 6, amounts at scale 10.

const q = (units: number) => BigInt(units) * 10_000n;
const px = (units: number) => BigInt(units) * 1_000_000n;
const amt = (units: number) => BigInt(units) * 10_000_000_000n;

let eventSeq = 0;
function ev(e: Partial<TradeEvent> & Pick<TradeEvent, 'tradeId' | 'side' | 'quantity' | 'price' | 'tradeTime'>): TradeEvent {
  eventSeq++;
  return { eventId: `e${eventSeq}`, accountId: 'A', type: 'NEW', version: 1, instrument: 'XYZ', currency: 'USD', eventTime: 1_000_000 + eventSeq * 1000, ...e };
}

async function single(events: TradeEvent[]): Promise<Outputs & { duplicates: number }> {
  const driver = newDriver('memory');
  await pipe(driver, events);
  const result = { ...(await outputs(driver)), duplicates: await totalDuplicates(driver) };
  await driver.close();
  return result;
}

function lastPosition(o: Outputs, key = 'A|XYZ'): Position {
  const p = lastPerKey(o.positions).get(key);
  expect(p, key).toBeDefined();
  return p!;
}

describe('trades topology, targeted cases', () => {
  it('closes two long lots with one sell, the second partially', async () => {
    const o = await single([
      ev({ tradeId: 'T1', side: 'BUY', quantity: q(10), price: px(100), tradeTime: 1 }),
      ev({ tradeId: 'T2', side: 'BUY', quantity: q(10), price: px(110), tradeTime: 2 }),
      ev({ tradeId: 'T3', side: 'SELL', quantity: q(15), price: px(120), tradeTime: 3 }),
    ]);
    expect(o.positions.map((r) => r.value.quantity)).toEqual([q(10), q(20), q(5)]);
    const p = lastPosition(o);
    // (120 − 100) × 10 + (120 − 110) × 5
    expect(p.realisedPnl).toBe(amt(250));
    expect(p.costBasis).toBe(amt(550));
    expect(p.averageCost).toBe(px(110));
    expect([p.openLots, p.liveTrades, p.lastTradeId, p.lastTradeVersion, p.currency]).toEqual([1, 3, 'T3', 1, 'USD']);
    expect(p.updatedAt).toBe(o.ledger.at(-1)!.value.postedAt);
  });

  it('goes short, then a buy covers the short lot and opens a long one', async () => {
    const o = await single([
      ev({ tradeId: 'S1', side: 'SELL', quantity: q(10), price: px(50), tradeTime: 1 }),
      ev({ tradeId: 'B1', side: 'BUY', quantity: q(4), price: px(45), tradeTime: 2 }),
      ev({ tradeId: 'B2', side: 'BUY', quantity: q(10), price: px(40), tradeTime: 3 }),
    ]);
    const [short, partCover, flipped] = o.positions.map((r) => r.value);
    expect([short!.quantity, short!.costBasis, short!.averageCost, short!.realisedPnl]).toEqual([-q(10), -amt(500), px(50), 0n]);
    expect([partCover!.quantity, partCover!.costBasis, partCover!.averageCost, partCover!.realisedPnl]).toEqual([-q(6), -amt(300), px(50), amt(20)]);
    // covers 6 @ 50 with a buy @ 40 (+60), and opens 4 long @ 40
    expect([flipped!.quantity, flipped!.costBasis, flipped!.averageCost, flipped!.realisedPnl, flipped!.openLots]).toEqual([q(4), amt(160), px(40), amt(80), 1]);
  });

  it('recomputes later P&L when an old trade is amended, reversing and re-posting its ledger entries', async () => {
    const o = await single([
      ev({ tradeId: 'T1', side: 'BUY', quantity: q(10), price: px(100), tradeTime: 10 }),
      ev({ tradeId: 'T2', side: 'SELL', quantity: q(6), price: px(120), tradeTime: 20 }),
      ev({ tradeId: 'T3', side: 'SELL', quantity: q(4), price: px(130), tradeTime: 30 }),
      ev({ tradeId: 'T1', type: 'AMEND', version: 2, side: 'BUY', quantity: q(10), price: px(90), tradeTime: 10 }),
    ]);
    expect(o.positions.map((r) => r.value.realisedPnl)).toEqual([0n, amt(120), amt(240), amt(340)]);
    const p = lastPosition(o);
    expect([p.quantity, p.averageCost, p.lastTradeId, p.lastTradeVersion]).toEqual([0n, null, 'T1', 2]);
    const amendTime = o.positions.at(-1)!.value.updatedAt;
    const amendEntries = o.ledger.filter((r) => r.value.postedAt === amendTime).map((r) => r.value);
    expect(amendEntries).toEqual([
      { entryId: 'T1:1:securities:reversal', accountId: 'A', tradeId: 'T1', tradeVersion: 1, ledgerAccount: 'securities:A:XYZ', side: 'CREDIT', amount: amt(1000), currency: 'USD', reverses: 'T1:1:securities', postedAt: amendTime },
      { entryId: 'T1:1:cash:reversal', accountId: 'A', tradeId: 'T1', tradeVersion: 1, ledgerAccount: 'cash:A:USD', side: 'DEBIT', amount: amt(1000), currency: 'USD', reverses: 'T1:1:cash', postedAt: amendTime },
      { entryId: 'T1:2:securities', accountId: 'A', tradeId: 'T1', tradeVersion: 2, ledgerAccount: 'securities:A:XYZ', side: 'DEBIT', amount: amt(900), currency: 'USD', reverses: null, postedAt: amendTime },
      { entryId: 'T1:2:cash', accountId: 'A', tradeId: 'T1', tradeVersion: 2, ledgerAccount: 'cash:A:USD', side: 'CREDIT', amount: amt(900), currency: 'USD', reverses: null, postedAt: amendTime },
    ]);
  });

  it('an amend that moves a trade earlier changes which lots later sells close', async () => {
    const o = await single([
      ev({ tradeId: 'T1', side: 'BUY', quantity: q(5), price: px(100), tradeTime: 10 }),
      ev({ tradeId: 'T2', side: 'BUY', quantity: q(5), price: px(80), tradeTime: 20 }),
      ev({ tradeId: 'T3', side: 'SELL', quantity: q(5), price: px(90), tradeTime: 30 }),
      ev({ tradeId: 'T2', type: 'AMEND', version: 2, side: 'BUY', quantity: q(5), price: px(80), tradeTime: 5 }),
    ]);
    // Before: the sell closes T1 (@100): −50. After T2 moves before T1, it closes T2 (@80): +50.
    expect(o.positions.map((r) => r.value.realisedPnl)).toEqual([0n, 0n, -amt(50), amt(50)]);
    expect(lastPosition(o).costBasis).toBe(amt(500));
  });

  it('takes a late-booked trade in tradeTime order, ties broken by tradeId', async () => {
    const o = await single([
      ev({ tradeId: 'T9', side: 'SELL', quantity: q(5), price: px(100), tradeTime: 50 }),
      ev({ tradeId: 'T5', side: 'BUY', quantity: q(5), price: px(90), tradeTime: 50 }), // same time, sorts first
      ev({ tradeId: 'T7', side: 'BUY', quantity: q(5), price: px(95), tradeTime: 40 }), // booked late, earliest
    ]);
    // Order: T7 buy @95, T5 buy @90, T9 sell @100 closes T7: +25; T5 stays open.
    expect(o.positions.map((r) => [r.value.quantity, r.value.realisedPnl])).toEqual([[-q(5), 0n], [0n, amt(50)], [q(5), amt(25)]]);
    expect(lastPosition(o).averageCost).toBe(px(90));
  });

  it('a cancel reverses the current version and takes the trade out of the live set', async () => {
    const o = await single([
      ev({ tradeId: 'T1', side: 'BUY', quantity: q(10), price: px(100), tradeTime: 10 }),
      ev({ tradeId: 'T1', type: 'AMEND', version: 2, side: 'BUY', quantity: q(8), price: px(100), tradeTime: 10 }),
      ev({ tradeId: 'T2', side: 'SELL', quantity: q(3), price: px(110), tradeTime: 20 }),
      ev({ tradeId: 'T1', type: 'CANCEL', version: 3, side: 'BUY', quantity: q(8), price: px(100), tradeTime: 10 }),
    ]);
    const p = lastPosition(o);
    expect([p.quantity, p.costBasis, p.averageCost, p.realisedPnl, p.liveTrades, p.lastTradeId, p.lastTradeVersion]).toEqual([-q(3), -amt(330), px(110), 0n, 1, 'T1', 3]);
    const cancelEntries = o.ledger.slice(-2).map((r) => [r.value.entryId, r.value.side, r.value.amount, r.value.reverses, r.value.tradeVersion]);
    expect(cancelEntries).toEqual([
      ['T1:2:securities:reversal', 'CREDIT', amt(800), 'T1:2:securities', 2],
      ['T1:2:cash:reversal', 'DEBIT', amt(800), 'T1:2:cash', 2],
    ]);
    expect(o.dlq).toEqual([]);
  });

  it('an amend to another instrument updates both positions and both securities accounts', async () => {
    const o = await single([
      ev({ tradeId: 'T1', side: 'BUY', quantity: q(10), price: px(100), tradeTime: 10 }),
      ev({ tradeId: 'T2', side: 'BUY', quantity: q(1), price: px(100), tradeTime: 11 }),
      ev({ tradeId: 'T1', type: 'AMEND', version: 2, instrument: 'ABC', currency: 'EUR', side: 'BUY', quantity: q(10), price: px(7), tradeTime: 10 }),
    ]);
    expect(o.positions.slice(-2).map((r) => [r.key, r.value.quantity, r.value.currency, r.value.liveTrades])).toEqual([
      ['A|XYZ', q(1), 'USD', 1],
      ['A|ABC', q(10), 'EUR', 1],
    ]);
    expect(o.ledger.slice(-4).map((r) => [r.value.entryId, r.value.ledgerAccount, r.value.currency])).toEqual([
      ['T1:1:securities:reversal', 'securities:A:XYZ', 'USD'],
      ['T1:1:cash:reversal', 'cash:A:USD', 'USD'],
      ['T1:2:securities', 'securities:A:ABC', 'EUR'],
      ['T1:2:cash', 'cash:A:EUR', 'EUR'],
    ]);
  });

  it('dead-letters a notional beyond decimal(38,10) at validation and goes on', async () => {
    const o = await single([
      ev({ tradeId: 'BIG', side: 'BUY', quantity: 10n ** 19n, price: 10n ** 19n, tradeTime: 1 }), // 10^38 at scale 10
      ev({ tradeId: 'OK', side: 'BUY', quantity: 10n ** 19n, price: 10n ** 19n - 1n, tradeTime: 2 }), // just fits
    ]);
    expect(o.dlq).toHaveLength(1);
    expect(o.dlq[0]!.headers['weir.dlq.stage']?.toString()).toBe('validation');
    expect(o.dlq[0]!.headers['weir.dlq.error']?.toString()).toMatch(/notional .* does not fit decimal\(38,10\)/);
    expect(JSON.parse(o.dlq[0]!.value).tradeId).toBe('BIG');
    expect(o.ledger.map((r) => r.value.entryId)).toEqual(['OK:1:securities', 'OK:1:cash']);
    expect(o.ledger[0]!.value.amount).toBe(10n ** 19n * (10n ** 19n - 1n));
    expect(o.positions.map((r) => r.value.lastTradeId)).toEqual(['OK']);
  });

  it('dead-letters a position that would overflow its decimals, leaving state untouched', async () => {
    const huge = 10n ** 19n * 6n; // 6·10^15 units: two of them exceed decimal(20,4)
    const o = await single([
      ev({ tradeId: 'H1', side: 'BUY', quantity: huge, price: 1n, tradeTime: 1 }),
      ev({ tradeId: 'H2', side: 'BUY', quantity: huge, price: 1n, tradeTime: 2 }),
      ev({ tradeId: 'S1', side: 'SELL', quantity: q(1), price: 1n, tradeTime: 3 }),
    ]);
    expect(o.dlq.map((r) => [r.headers['weir.dlq.stage']?.toString(), r.headers['weir.dlq.error.class']?.toString()])).toEqual([['validation', 'TradeRejectedError']]);
    expect(o.dlq[0]!.headers['weir.dlq.error']?.toString()).toMatch(/quantity does not fit decimal\(20,4\)/);
    expect(o.positions.map((r) => [r.value.lastTradeId, r.value.quantity, r.value.liveTrades])).toEqual([['H1', huge, 1], ['S1', huge - q(1), 2]]);
    expect(o.ledger.map((r) => r.value.tradeId)).toEqual(['H1', 'H1', 'S1', 'S1']);
  });

  it('dead-letters versions out of sequence, with nothing changed, and accepts the right one after', async () => {
    const base = { side: 'BUY', quantity: q(1), price: px(10), tradeTime: 1 } as const;
    const o = await single([
      ev({ tradeId: 'T1', ...base }),
      ev({ tradeId: 'T1', type: 'AMEND', version: 3, ...base, price: px(11) }), // gap
      ev({ tradeId: 'T1', ...base }), // NEW again, another eventId: stale
      ev({ tradeId: 'T1', type: 'CANCEL', version: 2, ...base, quantity: q(2) }), // does not repeat the terms
      ev({ tradeId: 'NOPE', type: 'AMEND', version: 2, ...base }), // unknown trade
      ev({ tradeId: 'T1', type: 'AMEND', version: 2, ...base, price: px(12) }), // fine
      ev({ tradeId: 'T1', type: 'AMEND', version: 2, ...base, price: px(13) }), // stale
      ev({ tradeId: 'T1', type: 'CANCEL', version: 3, ...base, price: px(12) }), // fine
      ev({ tradeId: 'T1', type: 'AMEND', version: 4, ...base }), // after the cancel
      ev({ tradeId: 'U1', ...base, currency: 'EUR' }), // XYZ trades in USD... but nothing is live now: accepted
      ev({ tradeId: 'U2', ...base, currency: 'USD' }), // a second currency for A|XYZ
    ]);
    expect(o.dlq.map((r) => JSON.parse(r.value).tradeId + ' ' + r.headers['weir.dlq.error']?.toString().replace(/^.*: /, ''))).toEqual([
      expect.stringMatching(/^T1 out of sequence, the trade is at version 1 \(expected 2\)$/),
      expect.stringMatching(/^T1 the trade exists already \(version 1\)$/),
      expect.stringMatching(/^T1 quantity differ from version 1 being cancelled$/),
      expect.stringMatching(/^NOPE no such trade/),
      expect.stringMatching(/^T1 stale, the trade is at version 2 already$/),
      expect.stringMatching(/^T1 the trade was cancelled at version 3$/),
      expect.stringMatching(/^U2 trade U2 is in USD but XYZ trades in EUR/),
    ]);
    for (const r of o.dlq) expect(r.headers['weir.dlq.error.class']?.toString()).toBe('TradeRejectedError');
    expect(o.ledger.map((r) => r.value.entryId)).toEqual([
      'T1:1:securities', 'T1:1:cash',
      'T1:1:securities:reversal', 'T1:1:cash:reversal', 'T1:2:securities', 'T1:2:cash',
      'T1:2:securities:reversal', 'T1:2:cash:reversal',
      'U1:1:securities', 'U1:1:cash',
    ]);
    expect(o.positions.map((r) => [r.value.lastTradeId, r.value.lastTradeVersion, r.value.quantity, r.value.currency])).toEqual([
      ['T1', 1, q(1), 'USD'], ['T1', 2, q(1), 'USD'], ['T1', 3, 0n, 'USD'], ['U1', 1, q(1), 'EUR'],
    ]);
  });

  it('counts a re-sent eventId as a duplicate and changes nothing', async () => {
    const t1 = ev({ tradeId: 'T1', side: 'BUY', quantity: q(1), price: px(10), tradeTime: 1 });
    const o = await single([t1, { ...t1 }, { ...t1, eventTime: t1.eventTime + 5 }]);
    expect(o.positions).toHaveLength(1);
    expect(o.ledger).toHaveLength(2);
    expect(o.duplicates).toBe(2);
  });

  it('dead-letters malformed trade events at validation', async () => {
    const good = ev({ tradeId: 'T1', side: 'BUY', quantity: q(1), price: px(10), tradeTime: 1 });
    const driver = newDriver('memory');
    await driver.pipeInput(TradesTopics.input, 'OTHER', good, { timestamp: 1 });
    await driver.pipeInput(TradesTopics.input, 'A', { ...good, eventId: 'x1', version: 2 }, { timestamp: 1 });
    await driver.pipeInput(TradesTopics.input, 'A', { ...good, eventId: 'x2', quantity: 0n }, { timestamp: 1 });
    await driver.pipeInput(TradesTopics.input, 'A', { ...good, eventId: 'x3', price: 12.5 }, { timestamp: 1 });
    const o = await outputs(driver);
    expect(o.dlq.map((r) => r.headers['weir.dlq.error']?.toString())).toEqual([
      'record key "OTHER" is not the accountId "A"',
      'a NEW trade is version 1, not 2',
      'quantity must be > 0 (the side gives the sign)',
      'price must be an exact decimal (bigint, scale 6)',
    ]);
    expect(o.positions).toEqual([]);
    await driver.close();
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('trades domain functions', () => {
  it('matches FIFO lots and leaves its input unchanged', () => {
    const lots = [
      { tradeId: 'a', quantity: q(10), price: px(100) },
      { tradeId: 'b', quantity: q(10), price: px(110) },
    ];
    const r = matchFifo(lots, { tradeId: 'c', side: 'SELL', quantity: q(25), price: px(120) });
    expect(r).toEqual({ lots: [{ tradeId: 'c', quantity: -q(5), price: px(120) }], realised: amt(300) });
    expect(lots[0]!.quantity).toBe(q(10));
  });

  it('rounds the average cost half-even at scale 6', () => {
    expect(divideHalfEven(25n, 10n)).toBe(2n);
    expect(divideHalfEven(35n, 10n)).toBe(4n);
    expect(divideHalfEven(26n, 10n)).toBe(3n);
    expect(divideHalfEven(24n, 10n)).toBe(2n);
    // 3 units costing 1.000001 in total: 0.3333336666… → 0.333334
    expect(averageCostOf(1_000_001n * 10_000n, q(3))).toBe(333_334n);
    // 2 units short at 0.0000005 each (cost −0.000001): exactly half a millionth → rounds to even (0)
    expect(averageCostOf(-10_000n, -q(2))).toBe(0n);
    expect(averageCostOf(-30_000n, -q(2))).toBe(2n);
    expect(averageCostOf(0n, 0n)).toBeNull();
  });

  it('orders live-set keys exactly as (tradeTime, tradeId), tradeId by code point', () => {
    const trades = [
      { tradeTime: -5, tradeId: 'b' }, { tradeTime: 0, tradeId: 'a' }, { tradeTime: 0, tradeId: 'ab' }, { tradeTime: 0, tradeId: 'B' },
      { tradeTime: 0, tradeId: '\uffff' }, { tradeTime: 0, tradeId: '😀' }, { tradeTime: 9, tradeId: 'a' }, { tradeTime: 10, tradeId: 'a' },
      { tradeTime: Number.MAX_SAFE_INTEGER, tradeId: 'z' }, { tradeTime: Number.MIN_SAFE_INTEGER, tradeId: 'z' },
    ].map((t) => ({ ...t, instrument: 'X' }));
    const byComparator = [...trades].sort(compareTradeOrder).map((t) => `${t.tradeTime}/${t.tradeId}`);
    const byKeyBytes = [...trades]
      .sort((a, b) => Buffer.compare(Buffer.from(liveKey('A', a)), Buffer.from(liveKey('A', b))))
      .map((t) => `${t.tradeTime}/${t.tradeId}`);
    expect(byKeyBytes).toEqual(byComparator);
    expect(byComparator.slice(0, 2)).toEqual([`${Number.MIN_SAFE_INTEGER}/z`, '-5/b']);
    expect(byComparator.slice(2, 7)).toEqual(['0/B', '0/a', '0/ab', '0/\uffff', '0/😀']);
  });

  it('sequences versions and keeps the cancelled terms', () => {
    const nu: TradeEvent = { eventId: 'e', accountId: 'A', tradeId: 'T', type: 'NEW', version: 1, instrument: 'X', side: 'BUY', quantity: 1n, price: 2n, currency: 'USD', tradeTime: 1, eventTime: 1 };
    const r1 = applyTradeEvent(undefined, nu);
    const r2 = applyTradeEvent(r1, { ...nu, type: 'AMEND', version: 2, price: 3n });
    const r3 = applyTradeEvent(r2, { ...nu, type: 'CANCEL', version: 3, price: 3n });
    expect(r3).toEqual<TradeRecord>({ tradeId: 'T', version: 3, live: false, termsVersion: 2, terms: { ...r2.terms } });
    const reason = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        return err instanceof TradeRejectedError ? err.reason : String(err);
      }
      return 'accepted';
    };
    expect(reason(() => applyTradeEvent(r1, { ...nu, type: 'AMEND', version: 1 }))).toBe('STALE_VERSION');
    expect(reason(() => applyTradeEvent(r1, { ...nu, type: 'AMEND', version: 3 }))).toBe('VERSION_GAP');
    expect(reason(() => applyTradeEvent(r3, { ...nu, type: 'AMEND', version: 4 }))).toBe('TRADE_CANCELLED');
    expect(reason(() => applyTradeEvent(undefined, { ...nu, type: 'CANCEL', version: 2 }))).toBe('UNKNOWN_TRADE');
    expect(reason(() => applyTradeEvent(r2, { ...nu, type: 'CANCEL', version: 3, side: 'SELL', price: 3n }))).toBe('CANCEL_TERMS_MISMATCH');
  });

  it('validates what a trade event can get wrong on its own', () => {
    const nu: TradeEvent = { eventId: 'e', accountId: 'A', tradeId: 'T', type: 'NEW', version: 1, instrument: 'X', side: 'BUY', quantity: 1n, price: 0n, currency: 'USD', tradeTime: 1, eventTime: 1 };
    expect(validateTradeEvent('A', nu)).toBeUndefined();
    expect(validateTradeEvent('A', { ...nu, tradeId: 'T\u0000' })).toMatch(/U\+0000/);
    expect(validateTradeEvent('A', { ...nu, type: 'AMEND' })).toMatch(/version 2 or later/);
    expect(validateTradeEvent('A', { ...nu, quantity: 10n ** 20n })).toMatch(/decimal\(20,4\)/);
    expect(validateTradeEvent('A', { ...nu, price: -1n })).toMatch(/>= 0/);
    expect(validateTradeEvent('A', { ...nu, currency: 'usd' })).toMatch(/ISO 4217/);
    expect(validateTradeEvent('A', { ...nu, tradeTime: 1.5 })).toMatch(/tradeTime/);
    expect(validateTradeEvent('A', null)).toMatch(/empty/);
  });

  it('reads and writes the catalog topics', () => {
    expect(contractOf(TradesTopics.input).application).toBe('trades');
    expect(contractOf(TradesTopics.positions).key).toBe('accountId|instrument');
    expect(contractOf(TradesTopics.ledger).key).toBe('accountId');
    const topology = tradesTopology({ serdes: tradesSerdes });
    expect(topology.sourceTopics).toEqual(['trades']);
    expect(topology.sinkTopics.sort()).toEqual(['ledger-entries', 'positions']);
    expect(topology.describe()).toMatch(/trades-in -> dedupe -> positions-and-ledger -> (positions-out -> ledger-out|ledger-out -> positions-out)/);
  });
});
