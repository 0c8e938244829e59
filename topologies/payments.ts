import { TopologyBuilder, type Topology } from '../runtime/topology.js';
import { Serdes, type Serde } from '../runtime/serde.js';
import type { Record } from '../runtime/processor.js';
import { DedupeProcessor, dedupeStore } from '../processors/dedupe.js';
import { ReconciliationProcessor, reconciliationStore } from '../processors/payments/reconciliation-processor.js';
import { validatePayment, validateSettlement } from '../processors/payments/validate.js';
import type { Payment, Reconciliation, Settlement } from '../schemas/types.js';

/** Topics of the payments application (schemas/catalog.ts). */
export const PAYMENTS_TOPICS = { payments: 'payments', settlements: 'settlements', reconciliations: 'reconciliations' } as const;

/** Store names, for inspection (duplicate counts, state). */
export const PAYMENTS_STORES = {
  paymentsDedupe: 'payments-dedupe',
  settlementsDedupe: 'settlements-dedupe',
  reconciliation: 'reconciliation',
} as const;

export const DEFAULT_SETTLEMENT_DEADLINE_MS = 48 * 60 * 60 * 1000;
export const DEFAULT_RECONCILIATION_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;

/** The value serde of each topic; keys are plain UTF-8 paymentIds. */
export interface PaymentsSerdes {
  payments: Serde<Payment>;
  settlements: Serde<Settlement>;
  reconciliations: Serde<Reconciliation>;
}

export interface PaymentsTopologyOptions {
  serdes: PaymentsSerdes;
  /** Store backend; default 'rocksdb'. */
  backend?: 'rocksdb' | 'memory';
  /** How long a payment waits for its settlement (and a settlement for its payment), event time; default 48 h. */
  deadlineMs?: number;
  /** How long a decided paymentId is remembered after its deadline (late arrivals pair within it); default 7 days. */
  retentionMs?: number;
  /** How long an eventId is remembered by the dedupe steps; default deadline + retention. */
  dedupeRetentionMs?: number;
  /** Stream-time punctuation interval of the reconciliation (results do not depend on it); default 60 s. */
  punctuationIntervalMs?: number;
  /** Partition count of payments and settlements (co-partitioned, checked against the broker at start). */
  partitions?: number;
}

const eventIdOf = (r: Record<string, { eventId: string }>): string => r.value.eventId;

/**
 * payments ──▶ dedupe (eventId) ──┐
 *                                  ├──▶ reconcile ──▶ reconciliations (key = paymentId)
 * settlements ─▶ dedupe (eventId) ─┘
 * Both inputs are keyed by paymentId and co-partitioned, so a payment and its settlement meet in one task.
 */
export function paymentsTopology(opts: PaymentsTopologyOptions): Topology {
  const backend = opts.backend ?? 'rocksdb';
  const deadlineMs = opts.deadlineMs ?? DEFAULT_SETTLEMENT_DEADLINE_MS;
  const retentionMs = opts.retentionMs ?? DEFAULT_RECONCILIATION_RETENTION_MS;
  const dedupeRetentionMs = opts.dedupeRetentionMs ?? deadlineMs + retentionMs;
  const punctuationIntervalMs = opts.punctuationIntervalMs ?? 60_000;
  for (const [name, v] of Object.entries({ deadlineMs, retentionMs, dedupeRetentionMs, punctuationIntervalMs })) {
    if (!(Number.isSafeInteger(v) && v > 0)) throw new RangeError(`${name} must be a positive integer number of milliseconds, got ${v}`);
  }
  const { payments, settlements, reconciliations } = PAYMENTS_TOPICS;
  const key = Serdes.string();
  return new TopologyBuilder()
    .addSource<string, Payment>('payments-source', {
      topics: [payments],
      keySerde: key,
      valueSerde: opts.serdes.payments,
      partitions: opts.partitions,
      validate: validatePayment,
    })
    .addSource<string, Settlement>('settlements-source', {
      topics: [settlements],
      keySerde: key,
      valueSerde: opts.serdes.settlements,
      partitions: opts.partitions,
      validate: validateSettlement,
    })
    .addProcessor(
      'dedupe-payments',
      () => new DedupeProcessor<string, Payment>({ storeName: PAYMENTS_STORES.paymentsDedupe, idOf: eventIdOf, retentionMs: dedupeRetentionMs }),
      'payments-source',
    )
    .addProcessor(
      'dedupe-settlements',
      () => new DedupeProcessor<string, Settlement>({ storeName: PAYMENTS_STORES.settlementsDedupe, idOf: eventIdOf, retentionMs: dedupeRetentionMs }),
      'settlements-source',
    )
    .addProcessor(
      'reconcile',
      () =>
        new ReconciliationProcessor({
          storeName: PAYMENTS_STORES.reconciliation,
          paymentsTopic: payments,
          settlementsTopic: settlements,
          deadlineMs,
          retentionMs,
          punctuationIntervalMs,
        }),
      'dedupe-payments',
      'dedupe-settlements',
    )
    .addStateStore(dedupeStore(PAYMENTS_STORES.paymentsDedupe, backend), 'dedupe-payments')
    .addStateStore(dedupeStore(PAYMENTS_STORES.settlementsDedupe, backend), 'dedupe-settlements')
    .addStateStore(reconciliationStore(PAYMENTS_STORES.reconciliation, backend), 'reconcile')
    .addSink<string, Reconciliation>('reconciliations-sink', { topic: reconciliations, keySerde: key, valueSerde: opts.serdes.reconciliations }, 'reconcile')
    .build();
}
