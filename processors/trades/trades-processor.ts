import type { Processor, ProcessorContext, Record } from '../../runtime/processor.js';
import { Serdes } from '../../runtime/serde.js';
import { keyValueStore, type KeyValueStore, type StoreSpec } from '../../state/store.js';
import type { LedgerEntry, Position, TradeEvent } from '../../schemas/types.js';
import { ledgerEntriesFor } from './ledger.js';
import { appendTrade, checkPositionFits, positionOf, positionStateOf, sortsLast, type PositionState } from './positions.js';
import { applyTradeEvent, liveKey, liveSetPrefix, liveTradeOf, positionStateKey, tradeKey, type LiveTrade, type TradeRecord } from './trade-state.js';

export interface TradesProcessorOptions {
  /** trade records: `<account>\0<tradeId>` → TradeRecord */
  recordsStore: string;
  /** live sets: `<account>\0<instrument>\0<tradeTime>\0<tradeId>` → LiveTrade, scanned in (tradeTime, tradeId) order */
  liveStore: string;
  /** FIFO state per (account, instrument): `<account>\0<instrument>` → PositionState */
  positionsStore: string;
  /** child (sink) names that positions and ledger entries are forwarded to */
  positionsChild: string;
  ledgerChild: string;
}

/** The three stores a TradesProcessor needs, with the names given in its options. */
export function tradesStores(
  names: Pick<TradesProcessorOptions, 'recordsStore' | 'liveStore' | 'positionsStore'>,
  backend: 'rocksdb' | 'memory' = 'rocksdb',
): StoreSpec<string, unknown>[] {
  return [
    keyValueStore(names.recordsStore, Serdes.string(), Serdes.json<TradeRecord>(), { backend }),
    keyValueStore(names.liveStore, Serdes.string(), Serdes.json<LiveTrade>(), { backend }),
    keyValueStore(names.positionsStore, Serdes.string(), Serdes.json<PositionState>(), { backend }),
  ] as StoreSpec<string, unknown>[];
}

interface PositionUpdate {
  instrument: string;
  state: PositionState;
  position: Position;
}

/**
 * Applies deduplicated, validated trade events of its task's accounts.
 * Responsible for:
 * - sequencing each trade's versions (trade-state.ts) and refusing, with TradeRejectedError, an event that does not
 *   follow — before it writes or forwards anything, so a dead-lettered event leaves no trace in state or output;
 * - keeping the live set of every (account, instrument) and the FIFO state computed from it; an event touches the
 *   live sets of the trade's old and new instrument (two when an AMEND moves the trade to another instrument);
 * - forwarding the ledger entries the event posts (ledger.ts), then one Position per touched (account, instrument).
 * The usual NEW, sorting after every live trade, extends the stored FIFO state; anything else (an amend, a cancel, a
 * late-booked trade) recomputes from the live set in (tradeTime, tradeId) order, so history edits are exact.
 */
export class TradesProcessor implements Processor<string, TradeEvent, string, Position | LedgerEntry> {
  private ctx!: ProcessorContext<string, Position | LedgerEntry>;
  private records!: KeyValueStore<string, TradeRecord>;
  private live!: KeyValueStore<string, LiveTrade>;
  private positions!: KeyValueStore<string, PositionState>;

  constructor(private readonly opts: TradesProcessorOptions) {}

  init(ctx: ProcessorContext<string, Position | LedgerEntry>): void {
    this.ctx = ctx;
    this.records = ctx.getStore(this.opts.recordsStore);
    this.live = ctx.getStore(this.opts.liveStore);
    this.positions = ctx.getStore(this.opts.positionsStore);
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
      const currency = before?.currency ?? (into ?? out)!.currency;
      const state =
        !out && into && (!before || sortsLast(before, into))
          ? appendTrade(before ?? positionStateOf([], currency), into)
          : positionStateOf(await this.liveSetAfter(account, instrument, out, into), currency);
      const position = positionOf(account, instrument, state, { tradeId: e.tradeId, version: e.version, eventTime: e.eventTime });
      checkPositionFits(position);
      updates.push({ instrument, state, position });
    }
    const entries = ledgerEntriesFor(account, previous, next, e.eventTime);

    // 2. Write the state (delete before put: an amend that keeps the trade's order key rewrites the same key).
    this.records.put(tradeKey(account, e.tradeId), next);
    if (leaving) this.live.delete(liveKey(account, leaving));
    if (entering) this.live.put(liveKey(account, entering), entering);
    for (const u of updates) this.positions.put(positionStateKey(account, u.instrument), u.state);

    // 3. Forward: ledger entries in posting order, then the positions.
    for (const entry of entries) await this.ctx.forward({ key: account, value: entry, timestamp: e.eventTime }, this.opts.ledgerChild);
    for (const u of updates) {
      await this.ctx.forward({ key: `${account}|${u.instrument}`, value: u.position, timestamp: e.eventTime }, this.opts.positionsChild);
    }
  }

  /** The live set of (account, instrument) as it will be once `out` has left it and `into` has joined it. */
  private async liveSetAfter(account: string, instrument: string, out: LiveTrade | undefined, into: LiveTrade | undefined): Promise<LiveTrade[]> {
    const trades: LiveTrade[] = [];
    for await (const { value } of this.live.prefixScan(liveSetPrefix(account, instrument))) {
      if (value.tradeId !== out?.tradeId) trades.push(value);
    }
    if (into) trades.push(into);
    return trades;
  }
}
