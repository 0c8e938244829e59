/**
 * The reconciliation each paymentId must end with, recomputed from the payments and settlements alone (DESIGN.md,
 * "Reconciliation"; no code shared with processors/payments). Once stream time has passed every deadline, the
 * current result of a paymentId does not depend on how the two topics interleaved or on what was decided before:
 * - a payment and a settlement: MATCHED when the currencies agree and gross = amount, else AMOUNT_MISMATCH
 *   (difference = gross − amount when the currencies agree, else none) — a late side supersedes a deadline result;
 * - a payment alone: MISSING_SETTLEMENT; a settlement alone: UNEXPECTED_SETTLEMENT.
 * The first payment and the first settlement of a paymentId count (further ones change nothing). This holds while
 * the two sides of a pair arrive within deadline + retention of each other, as the generated stream does.
 */
import type { Payment, Reconciliation, Settlement } from '../../../schemas/types.js';

export interface ExpectedReconciliation {
  status: Reconciliation['status'];
  /** gross − amount for a pair in one currency; null otherwise */
  difference: bigint | null;
  expectedAmount: bigint | null;
  settledAmount: bigint | null;
}

export type PaymentsInput = { topic: 'payments'; value: Payment } | { topic: 'settlements'; value: Settlement };

/** `inputs`: valid, deduplicated payments and settlements in topic order. */
export function expectedReconciliations(inputs: readonly PaymentsInput[]): Map<string, ExpectedReconciliation> {
  const sides = new Map<string, { payment?: Payment; settlement?: Settlement }>();
  for (const r of inputs) {
    const entry = sides.get(r.value.paymentId) ?? {};
    if (r.topic === 'payments') entry.payment ??= r.value;
    else entry.settlement ??= r.value;
    sides.set(r.value.paymentId, entry);
  }
  const out = new Map<string, ExpectedReconciliation>();
  for (const [paymentId, { payment, settlement }] of sides) {
    if (payment && settlement) {
      const difference = payment.currency === settlement.currency ? settlement.grossAmount - payment.amount : null;
      out.set(paymentId, {
        status: difference === 0n ? 'MATCHED' : 'AMOUNT_MISMATCH',
        difference,
        expectedAmount: payment.amount,
        settledAmount: settlement.grossAmount,
      });
    } else if (payment) {
      out.set(paymentId, { status: 'MISSING_SETTLEMENT', difference: null, expectedAmount: payment.amount, settledAmount: null });
    } else {
      out.set(paymentId, { status: 'UNEXPECTED_SETTLEMENT', difference: null, expectedAmount: null, settledAmount: settlement!.grossAmount });
    }
  }
  return out;
}
