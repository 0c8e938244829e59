import type { Payment, Reconciliation, Settlement } from '../../schemas/types.js';

/**
 * The reconciliation rules as pure functions: no store, no context, no clock. The processor
 * (reconciliation-processor.ts) loads a `PaymentState`, calls one of `applyPayment`, `applySettlement`
 * or `applyDue`, forwards the results and stores what comes back.
 *
 * The rules, per paymentId (this is what the README states):
 * - The first payment and the first settlement seen for a paymentId form its pair. When both are there the
 *   result is MATCHED (currencies agree and grossAmount == amount) or AMOUNT_MISMATCH (difference =
 *   grossAmount − amount when the currencies agree; null with settlementCurrency set when they differ).
 *   decidedAt is the eventTime of the event that completed the pair.
 * - One side alone waits until stream time passes its eventTime + deadline (strictly: stream time >
 *   eventTime + deadline), then it is MISSING_SETTLEMENT (payment alone) or UNEXPECTED_SETTLEMENT
 *   (settlement alone), decidedAt = that deadline.
 * - Late arrivals are never lost: a settlement that arrives after its payment was declared
 *   MISSING_SETTLEMENT produces the MATCHED / AMOUNT_MISMATCH result the pair deserves (decidedAt = the
 *   settlement's eventTime); likewise a payment arriving after its settlement was declared
 *   UNEXPECTED_SETTLEMENT. That later result supersedes the earlier one: the last result emitted for a
 *   paymentId (offset order on its partition of `reconciliations`) is the current one.
 * - A decided paymentId is remembered until stream time passes (latest eventTime of its pair) + deadline
 *   + retention; after that it is forgotten, and an event for it starts afresh.
 * - A further payment, or a further settlement, for a paymentId that already has one produces no result:
 *   paymentId is unique, so it is either a retry older than the dedupe window (same eventId: counted as a
 *   late duplicate) or a conflicting report (new eventId: counted as an extra payment / settlement).
 */

export type ReconciliationStatus = Reconciliation['status'];

/** What the processor keeps per paymentId. */
export interface PaymentState {
  paymentId: string;
  /** The first payment event seen, or null while only the settlement is known. */
  payment: Payment | null;
  /** The first settlement event seen, or null while only the payment is known. */
  settlement: Settlement | null;
  /** Status of the last result emitted for this paymentId; null while waiting for the first one. */
  status: ReconciliationStatus | null;
  /** Stream time at which this entry needs attention: its deadline while waiting, its purge time once decided. */
  dueAt: number;
}

export interface ReconcileConfig {
  /** How long one side waits for the other, in event time (ms). */
  deadlineMs: number;
  /** How long a decided paymentId is remembered after its deadline, in stream time (ms). */
  retentionMs: number;
}

/** Why an event changed nothing (it is counted). */
export type IgnoredReason = 'late-duplicate' | 'extra-payment' | 'extra-settlement';

export interface Transition {
  /** The state to store; null deletes it. */
  state: PaymentState | null;
  /** Results to emit, in order. */
  results: Reconciliation[];
  /** Set when the event was not used. */
  ignored?: IgnoredReason;
}

/** The result of a complete pair. */
export function pairResult(payment: Payment, settlement: Settlement, decidedAt: number): Reconciliation {
  const sameCurrency = payment.currency === settlement.currency;
  const difference = sameCurrency ? settlement.grossAmount - payment.amount : null;
  return {
    paymentId: payment.paymentId,
    status: difference === 0n ? 'MATCHED' : 'AMOUNT_MISMATCH',
    settlementId: settlement.settlementId,
    merchantId: payment.merchantId,
    vendor: payment.vendor,
    expectedAmount: payment.amount,
    settledAmount: settlement.grossAmount,
    difference,
    fee: settlement.fee,
    currency: payment.currency,
    settlementCurrency: settlement.currency,
    decidedAt,
  };
}

/** A payment whose settlement did not come by its deadline. */
export function missingSettlement(payment: Payment, deadline: number): Reconciliation {
  return {
    paymentId: payment.paymentId,
    status: 'MISSING_SETTLEMENT',
    settlementId: null,
    merchantId: payment.merchantId,
    vendor: payment.vendor,
    expectedAmount: payment.amount,
    settledAmount: null,
    difference: null,
    fee: null,
    currency: payment.currency,
    settlementCurrency: null,
    decidedAt: deadline,
  };
}

/** A settlement whose payment did not come by its deadline. */
export function unexpectedSettlement(settlement: Settlement, deadline: number): Reconciliation {
  return {
    paymentId: settlement.paymentId,
    status: 'UNEXPECTED_SETTLEMENT',
    settlementId: settlement.settlementId,
    merchantId: null,
    vendor: settlement.vendor,
    expectedAmount: null,
    settledAmount: settlement.grossAmount,
    difference: null,
    fee: settlement.fee,
    currency: settlement.currency,
    settlementCurrency: settlement.currency,
    decidedAt: deadline,
  };
}

/** A payment event arrives (already deduplicated by eventId within the dedupe window). */
export function applyPayment(state: PaymentState | undefined, payment: Payment, cfg: ReconcileConfig): Transition {
  if (!state) {
    const fresh: PaymentState = { paymentId: payment.paymentId, payment, settlement: null, status: null, dueAt: payment.eventTime + cfg.deadlineMs };
    return { state: fresh, results: [] };
  }
  if (state.payment) {
    return { state, results: [], ignored: state.payment.eventId === payment.eventId ? 'late-duplicate' : 'extra-payment' };
  }
  // Only the settlement was known (waiting, or already declared UNEXPECTED_SETTLEMENT): the pair is complete.
  const settlement = state.settlement!;
  const result = pairResult(payment, settlement, payment.eventTime);
  return { state: decidedPair(state, payment, settlement, result.status, cfg), results: [result] };
}

/** A settlement event arrives (already deduplicated by eventId within the dedupe window). */
export function applySettlement(state: PaymentState | undefined, settlement: Settlement, cfg: ReconcileConfig): Transition {
  if (!state) {
    const fresh: PaymentState = { paymentId: settlement.paymentId, payment: null, settlement, status: null, dueAt: settlement.eventTime + cfg.deadlineMs };
    return { state: fresh, results: [] };
  }
  if (state.settlement) {
    return { state, results: [], ignored: state.settlement.eventId === settlement.eventId ? 'late-duplicate' : 'extra-settlement' };
  }
  // Only the payment was known (waiting, or already declared MISSING_SETTLEMENT): the pair is complete.
  const payment = state.payment!;
  const result = pairResult(payment, settlement, settlement.eventTime);
  return { state: decidedPair(state, payment, settlement, result.status, cfg), results: [result] };
}

/** Stream time has passed `state.dueAt`: decide a waiting entry at its deadline, or forget a decided one. */
export function applyDue(state: PaymentState, cfg: ReconcileConfig): Transition {
  if (state.status !== null) return { state: null, results: [] };
  const deadline = state.dueAt;
  const result = state.payment ? missingSettlement(state.payment, deadline) : unexpectedSettlement(state.settlement!, deadline);
  return { state: { ...state, status: result.status, dueAt: deadline + cfg.retentionMs }, results: [result] };
}

function decidedPair(state: PaymentState, payment: Payment, settlement: Settlement, status: ReconciliationStatus, cfg: ReconcileConfig): PaymentState {
  const latest = Math.max(payment.eventTime, settlement.eventTime);
  return { ...state, payment, settlement, status, dueAt: latest + cfg.deadlineMs + cfg.retentionMs };
}
