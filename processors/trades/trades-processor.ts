import type { Processor, ProcessorContext, Record } from '../../runtime/processor.js';
import { Serdes } from '../../runtime/serde.js';
import { keyValueStore, type KeyValueStore, type StoreSpec } from '../../state/store.js';
import type { LedgerEntry, Position, TradeEvent } from '../../schemas/types.js';
import { ledgerEntriesFor } from './ledger.js';
import { appendTrade, checkPositionFits, emptyPositionState, positionOf, sortsLast, type PositionState } from './positions.js';
import {
  applyTradeEvent,
  checkpointKey,
  compareTradeOrder,
  liveKey,
  liveKeysAfter,
  liveTradeOf,
  positionStateKey,
  tradeKey,
  type LiveTrade,
  type OrderKey,
  type TradeRecord,
} from './trade-state.js';

export interface TradesProcessorOptions {
  /** trade records: `<account>\0<tradeId>` → TradeRecord */
  recordsStore: string;
  /** live sets: `<account>\0<instrument>\0<tradeTime>\0<tradeId>` → LiveTrade, scanned in (tradeTime, tradeId) order */
  liveStore: string;
  /** FIFO state per (account, instrument): `<account>\0<instrument>` → PositionState */
  positionsStore: string;
  /**
   * FIFO checkpoints: `<account>\0<instrument>\0<tradeTime>\0<tradeId>` (the live key of the trade it follows) →
   * the PositionState of the live trades up to and including that trade (without `checkpoints`).
   */
  checkpointsStore: string;
  /** A checkpoint after every `checkpointEvery`-th live trade of an (account, instrument); default CHECKPOINT_EVERY. */
  checkpointEvery?: number;
  /** child (sink) names that positions and ledger entries are forwarded to */
  positionsChild: string;
  ledgerChild: string;
}

/**
 * Default checkpoint spacing K. An edit at order key k replays the live trades after the last checkpoint before k:
 * at most K − 1 of them before k, then every trade after k. Each checkpoint costs a store entry as large as the
 * open lots at that point, and an edit rewrites the checkpoints after k (about (trades after k) / K of them), so K
 * trades the replay before k against checkpoint writes; 256 keeps both small next to the suffix an edit replays
 * anyway, and the checkpoint list in the PositionState short (a 100 000-trade live set: ~390 entries).
 */
export const CHECKPOINT_EVERY = 256;

/** The four stores a TradesProcessor needs, with the names given in its options. */
export function tradesStores(
  names: Pick<TradesProcessorOptions, 'recordsStore' | 'liveStore' | 'positionsStore' | 'checkpointsStore'>,
  backend: 'rocksdb' | 'memory' = 'rocksdb',
): StoreSpec<string, unknown>[] {
  return [
    keyValueStore(names.recordsStore, Serdes.string(), Serdes.json<TradeRecord>(), { backend }),
    keyValueStore(names.liveStore, Serdes.string(), Serdes.json<LiveTrade>(), { backend }),
    keyValueStore(names.positionsStore, Serdes.string(), Serdes.json<PositionState>(), { backend }),
    keyValueStore(names.checkpointsStore, Serdes.string(), Serdes.json<PositionState>(), { backend }),
  ] as StoreSpec<string, unknown>[];
}

interface PositionUpdate {
  instrument: string;
  state: PositionState;
  position: Position;
  /** checkpoints to write (key → state), and stale ones to delete (none of them among the writes) */
  checkpointPuts: Array<[string, PositionState]>;
  checkpointDeletes: string[];
}

const orderKeyOf = (t: OrderKey): OrderKey => ({ tradeTime: t.tradeTime, tradeId: t.tradeId });

/**
 * Applies deduplicated, validated trade events of its task's accounts.
 * Per event: sequences the trade's versions, posts its ledger entries and emits the position per touched (account, instrument).
 * Positions are the FIFO fold of the live set in (tradeTime, tradeId) order:
 * - the usual NEW, sorting after every live trade, extends the stored FIFO state (O(open lots));
 * - anything else (an amend, a cancel, a late-booked trade) changes the live set at some order key k (the smaller
 *   of the leaving and the entering trade's). The FIFO state after every K-th live trade is kept in the checkpoint
 *   store, and the PositionState lists those checkpoints' order keys; the edit starts from the last checkpoint
 *   strictly before k (or from nothing), folds the live trades after it — the new live set's — and replaces the
 *   checkpoints from k on. The fold before k is the one that was checkpointed, so the result is exactly a full
 *   recompute's, currency checks included (the trades up to a checkpoint are in its currency).
 */
export class TradesProcessor implements Processor<string, TradeEvent, string, Position | LedgerEntry> {
  private ctx!: ProcessorContext<string, Position | LedgerEntry>;
  private records!: KeyValueStore<string, TradeRecord>;
  private live!: KeyValueStore<string, LiveTrade>;
  private positions!: KeyValueStore<string, PositionState>;
  private checkpoints!: KeyValueStore<string, PositionState>;
  private readonly every: number;

  constructor(private readonly opts: TradesProcessorOptions) {
    this.every = opts.checkpointEvery ?? CHECKPOINT_EVERY;
    if (!Number.isSafeInteger(this.every) || this.every < 1) throw new RangeError(`checkpointEvery must be a positive integer, got ${this.every}`);
  }

  init(ctx: ProcessorContext<string, Position | LedgerEntry>): void {
    this.ctx = ctx;
    this.records = ctx.getStore(this.opts.recordsStore);
    this.live = ctx.getStore(this.opts.liveStore);
    this.positions = ctx.getStore(this.opts.positionsStore);
    this.checkpoints = ctx.getStore(this.opts.checkpointsStore);
  }

  async process(record: Record<string, TradeEvent>): Promise<void> {
    const e = record.value;
    const account = e.accountId;

    // 1. Compute everything; any of these may refuse the event, and nothing is written yet.
    const previous = await this.records.get(tradeKey(account, e.tradeId));
    const next = applyTradeEvent(previous, e);
    const leaving = previous?.live ? liveTradeOf(previous) : undefined;
    const entering = next.live ? liveTradeOf(next) : undefined;
    const instruments = [...new Set([leaving?.instrument, entering?.instrument].filter((i): i is string => i !== undefined))];
    const updates: PositionUpdate[] = [];
    for (const instrument of instruments) {
      const out = leaving?.instrument === instrument ? leaving : undefined;
      const into = entering?.instrument === instrument ? entering : undefined;
      const before = await this.positions.get(positionStateKey(account, instrument));
      const update = await this.nextState(account, instrument, before, out, into);
      const position = positionOf(account, instrument, update.state, { tradeId: e.tradeId, version: e.version, eventTime: e.eventTime });
      checkPositionFits(position);
      updates.push({ instrument, position, ...update });
    }
    const entries = ledgerEntriesFor(account, previous, next, e.eventTime);

    // 2. Write the state (delete before put: an amend that keeps the trade's order key rewrites the same key).
    this.records.put(tradeKey(account, e.tradeId), next);
    if (leaving) this.live.delete(liveKey(account, leaving));
    if (entering) this.live.put(liveKey(account, entering), entering);
    for (const u of updates) {
      this.positions.put(positionStateKey(account, u.instrument), u.state);
      for (const key of u.checkpointDeletes) this.checkpoints.delete(key);
      for (const [key, state] of u.checkpointPuts) this.checkpoints.put(key, state);
    }

    // 3. Forward: ledger entries in posting order, then the positions.
    for (const entry of entries) await this.ctx.forward({ key: account, value: entry, timestamp: e.eventTime }, this.opts.ledgerChild);
    for (const u of updates) {
      await this.ctx.forward({ key: `${account}|${u.instrument}`, value: u.position, timestamp: e.eventTime }, this.opts.positionsChild);
    }
  }

  /**
   * The FIFO state of (account, instrument) once `out` has left its live set and `into` has joined it, and the
   * checkpoint changes that go with it. Reads only; throws what the fold throws (CURRENCY_MISMATCH).
   */
  private async nextState(
    account: string,
    instrument: string,
    before: PositionState | undefined,
    out: LiveTrade | undefined,
    into: LiveTrade | undefined,
  ): Promise<Omit<PositionUpdate, 'instrument' | 'position'>> {
    const currency = before?.currency ?? (into ?? out)!.currency;
    const previousCheckpoints = before?.checkpoints ?? [];
    let state = before ?? emptyPositionState(currency);
    const checkpoints = previousCheckpoints.slice();
    const checkpointPuts: Array<[string, PositionState]> = [];
    const fold = (t: LiveTrade) => {
      state = appendTrade(state, t);
      if (state.liveTrades % this.every === 0) {
        checkpoints.push(orderKeyOf(t));
        checkpointPuts.push([checkpointKey(account, instrument, t), state]);
      }
    };

    if (!out && into && (!before || sortsLast(before, into))) {
      // Appending after every live trade: no checkpoint changes, perhaps a new one.
      fold(into);
      return { state: { ...state, checkpoints }, checkpointPuts, checkpointDeletes: [] };
    }

    // An edit at order key k: checkpoints at k or after it no longer describe the live set's prefix.
    const edit = out && into ? (compareTradeOrder(out, into) <= 0 ? out : into) : (out ?? into)!;
    let kept = checkpoints.length;
    while (kept > 0 && compareTradeOrder(checkpoints[kept - 1]!, edit) >= 0) kept--;
    const stale = checkpoints.splice(kept);
    const base = kept > 0 ? checkpoints[kept - 1]! : null;
    state = emptyPositionState(currency);
    if (base) {
      const stored = await this.checkpoints.get(checkpointKey(account, instrument, base));
      if (!stored) throw new Error(`trades checkpoint ${account}|${instrument} at ${base.tradeTime}/${base.tradeId} is listed but missing from ${this.opts.checkpointsStore}`);
      state = stored;
    }

    // The live store still holds the old live set: skip `out`, and take `into` at its place (it sorts after base).
    let pending = into;
    const { from, to } = liveKeysAfter(account, instrument, base);
    for await (const { value } of this.live.range(from, to)) {
      if (value.tradeId === out?.tradeId) continue;
      if (pending && compareTradeOrder(pending, value) < 0) {
        fold(pending);
        pending = undefined;
      }
      fold(value);
    }
    if (pending) fold(pending);

    const rewritten = new Set(checkpointPuts.map(([key]) => key));
    const checkpointDeletes = stale.map((c) => checkpointKey(account, instrument, c)).filter((key) => !rewritten.has(key));
    return { state: { ...state, checkpoints }, checkpointPuts, checkpointDeletes };
  }
}
