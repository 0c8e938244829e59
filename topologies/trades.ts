/**
 * Trades → positions and ledger (DESIGN.md, "Trades", "Positions", "Ledger").
 *
 *   trades (key accountId) ─ validate ─▶ dedupe (eventId) ─▶ positions-and-ledger ─┬─▶ positions (key accountId|instrument)
 *                                                                                 └─▶ ledger-entries (key accountId)
 *
 * - `validate` dead-letters what is wrong on its own: key ≠ accountId, bad enums or versions (NEW ≠ 1), quantity,
 *   price or a notional that does not fit its decimal (quantity × price beyond decimal(38,10)).
 * - dedupe drops a re-sent eventId and counts it (store `trades-dedupe`, see `duplicatesCounted`).
 * - positions-and-ledger refuses what is wrong given the state — a version out of sequence (stale or gap), an
 *   amend/cancel of an unknown or cancelled trade, a cancel that does not repeat the cancelled terms, a second
 *   currency for one instrument, a position beyond its decimals — by throwing TradeRejectedError (a
 *   RecordRejectedError) before it changes anything: the record lands on the dead-letter topic (stage `validation`)
 *   whatever the processing-error policy, and processing goes on.
 *   A rejected event's eventId stays in the dedupe store: re-sending it counts as a duplicate.
 *   A duplicate arriving after the dedupe retention is not counted, but its version is stale by then, so it is
 *   dead-lettered rather than applied twice.
 */
import { TopologyBuilder, type Topology } from '../runtime/topology.js';
import { Serdes, type Serde } from '../runtime/serde.js';
import { DedupeProcessor, dedupeStore } from '../processors/dedupe.js';
import { TradesProcessor, tradesStores, type TradesProcessorOptions } from '../processors/trades/trades-processor.js';
import { validateTradeEvent } from '../processors/trades/validate-trade.js';
import type { LedgerEntry, Position, TradeEvent } from '../schemas/types.js';

/** One value serde per topic: trades, positions, ledger-entries (keys are plain UTF-8 strings). */
export interface TradesSerdes {
  trades: Serde<TradeEvent>;
  positions: Serde<Position>;
  ledgerEntries: Serde<LedgerEntry>;
}

export interface TradesTopologyOptions {
  serdes: TradesSerdes;
  /** Store backend; 'rocksdb' (default) in production. */
  backend?: 'rocksdb' | 'memory';
  /** How long (event time) an eventId is remembered for dedupe; default 7 days. */
  dedupeRetentionMs?: number;
  /** Partition count the `trades` topic must have, if it should be checked. */
  partitions?: number;
  /**
   * Checkpoint spacing of the positions' FIFO state (every K live trades of an (account, instrument)); default
   * CHECKPOINT_EVERY (256). Tests use a small K to exercise checkpoints on short streams.
   */
  checkpointEvery?: number;
}

export const TradesTopics = { input: 'trades', positions: 'positions', ledger: 'ledger-entries' } as const;

/** Store names, for tests and tooling (changelogs: `<applicationId>-<store>-changelog`). */
export const TradesStores = {
  dedupe: 'trades-dedupe',
  records: 'trades-records',
  live: 'trades-live',
  positions: 'trades-positions',
  /** FIFO state after every K-th live trade, so an amend, cancel or late trade replays only a suffix. */
  checkpoints: 'trades-checkpoints',
} as const;

export const DEFAULT_DEDUPE_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;

export function tradesTopology(opts: TradesTopologyOptions): Topology {
  const backend = opts.backend ?? 'rocksdb';
  const processorOptions: TradesProcessorOptions = {
    recordsStore: TradesStores.records,
    liveStore: TradesStores.live,
    positionsStore: TradesStores.positions,
    checkpointsStore: TradesStores.checkpoints,
    ...(opts.checkpointEvery === undefined ? {} : { checkpointEvery: opts.checkpointEvery }),
    positionsChild: 'positions-out',
    ledgerChild: 'ledger-out',
  };
  const builder = new TopologyBuilder()
    .addSource<string, TradeEvent>('trades-in', {
      topics: [TradesTopics.input],
      keySerde: Serdes.string(),
      valueSerde: opts.serdes.trades,
      partitions: opts.partitions,
      validate: validateTradeEvent,
    })
    .addProcessor(
      'dedupe',
      () =>
        new DedupeProcessor<string, TradeEvent>({
          storeName: TradesStores.dedupe,
          idOf: (r) => r.value.eventId,
          retentionMs: opts.dedupeRetentionMs ?? DEFAULT_DEDUPE_RETENTION_MS,
        }),
      'trades-in',
    )
    .addProcessor('positions-and-ledger', () => new TradesProcessor(processorOptions), 'dedupe')
    .addStateStore(dedupeStore(TradesStores.dedupe, backend), 'dedupe')
    .addSink('positions-out', { topic: TradesTopics.positions, keySerde: Serdes.string(), valueSerde: opts.serdes.positions }, 'positions-and-ledger')
    .addSink('ledger-out', { topic: TradesTopics.ledger, keySerde: Serdes.string(), valueSerde: opts.serdes.ledgerEntries }, 'positions-and-ledger');
  for (const spec of tradesStores(processorOptions, backend)) builder.addStateStore(spec, 'positions-and-ledger');
  return builder.build();
}
