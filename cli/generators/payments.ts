import type { Payment, Reconciliation, Settlement, Vendor } from '../../schemas/types.js';
import { mulberry32 } from './random.js';

/**
 * A seeded, deterministic stream of payments and settlement lines for the reconciliation tests.
 * Same seed and options → the same records in the same order (no Math.random, no clock).
 *
 * Each payment follows one scenario (see `PaymentScenario`); amounts are bigint at scale 4, fees are ADYEN-style
 * (1.2 % + 0.11, rounded half-even) or SEPA-style (flat 0.20 or none). Records are returned in the order to pipe
 * them, which is by "arrival" time: mostly each record's eventTime, but some arrive later than their eventTime
 * says (a payment held back behind its settlement, a settlement delivered after its payment's deadline), and
 * retried sends (duplicates: same eventId, same value, same timestamp) arrive a little after the original.
 *
 * Alongside the records it returns each paymentId's `intent`: what the scenario was built to produce. Tests use it
 * as a check independent of any event-by-event model.
 */
export type PaymentScenario =
  /** settlement on time, gross = amount */
  | 'matched'
  /** settlement on time, gross ≠ amount (same currency) */
  | 'amount-mismatch'
  /** settlement on time in another currency */
  | 'currency-mismatch'
  /** settlement arrives before its payment (earlier eventTime, or the payment held back), within the deadline */
  | 'settlement-first'
  /** settlement alone past its deadline (UNEXPECTED_SETTLEMENT), then the payment arrives */
  | 'late-payment'
  /** payment alone past its deadline (MISSING_SETTLEMENT), then the settlement arrives with eventTime > deadline */
  | 'late-settlement'
  /** settlement eventTime within the deadline, but delivered after stream time passed it */
  | 'delayed-settlement'
  /** payment, never a settlement */
  | 'missing-settlement'
  /** settlement for a paymentId never paid */
  | 'unexpected-settlement';

export interface GeneratedRecord {
  topic: 'payments' | 'settlements';
  key: string;
  value: Payment | Settlement;
  /** The record timestamp: the value's eventTime. */
  timestamp: number;
  /** A retried send of an earlier record (same eventId). */
  duplicate: boolean;
}

export interface PaymentIntent {
  scenario: PaymentScenario;
  /** The status the paymentId must end with. */
  finalStatus: Reconciliation['status'];
  /** decidedAt of the final result. */
  finalDecidedAt: number;
  /** gross − amount for a same-currency pair, else null. */
  difference: bigint | null;
  /** A result the scenario is certain to produce before the final one (late-payment, late-settlement). */
  certainIntermediate: Reconciliation['status'] | null;
}

export interface GeneratedPayments {
  records: GeneratedRecord[];
  intents: Map<string, PaymentIntent>;
  duplicates: { payments: number; settlements: number };
  /** The largest eventTime generated. */
  maxEventTime: number;
}

export interface PaymentsGeneratorOptions {
  seed: number;
  /** Number of paymentIds (orphan settlements included). */
  count: number;
  deadlineMs: number;
  /** First event time (ms); default 2025-01-01T00:00:00Z. */
  start?: number;
  /** Mean event-time gap between consecutive paymentIds (ms); default 10 minutes. */
  gapMs?: number;
  merchants?: number;
  /** Share of records sent twice (a third of those three times); default 0.06. */
  duplicateRate?: number;
}

const HOUR = 3_600_000;
const MINUTE = 60_000;

const WEIGHTS: ReadonlyArray<readonly [PaymentScenario, number]> = [
  ['matched', 40],
  ['amount-mismatch', 10],
  ['currency-mismatch', 6],
  ['settlement-first', 10],
  ['late-payment', 6],
  ['late-settlement', 8],
  ['delayed-settlement', 5],
  ['missing-settlement', 8],
  ['unexpected-settlement', 7],
];

const CURRENCIES = ['EUR', 'GBP', 'USD', 'JPY'] as const;

export function generatePayments(opts: PaymentsGeneratorOptions): GeneratedPayments {
  const rnd = mulberry32(opts.seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)]!;
  const chance = (p: number) => rnd() < p;
  const D = opts.deadlineMs;
  const start = opts.start ?? Date.UTC(2025, 0, 1);
  const gap = opts.gapMs ?? 10 * MINUTE;
  const merchants = opts.merchants ?? 60;
  const duplicateRate = opts.duplicateRate ?? 0.06;
  const totalWeight = WEIGHTS.reduce((s, [, w]) => s + w, 0);

  interface Pending {
    rec: GeneratedRecord;
    arrival: number;
    seq: number;
  }
  const pending: Pending[] = [];
  let seq = 0;
  const emit = (topic: GeneratedRecord['topic'], value: Payment | Settlement, arrival: number) => {
    pending.push({ rec: { topic, key: value.paymentId, value, timestamp: value.eventTime, duplicate: false }, arrival, seq: seq++ });
  };
  const intents = new Map<string, PaymentIntent>();

  for (let i = 0; i < opts.count; i++) {
    const scenario = chooseScenario(int(1, totalWeight));
    const t0 = start + i * gap + int(0, gap - 1);
    const vendor: Vendor = chance(0.55) ? 'ADYEN' : 'SEPA';
    const currency = vendor === 'SEPA' ? 'EUR' : pick(CURRENCIES);
    const amount = currency === 'JPY' ? BigInt(int(100, 500_000)) * 10_000n : BigInt(int(100, 2_000_000)) * 100n;
    const paymentId = scenario === 'unexpected-settlement' ? `orphan-${pad(i)}` : `pay-${pad(i)}`;
    const payment = (eventTime: number): Payment => ({
      eventId: `pe-${pad(i)}`,
      paymentId,
      merchantId: `m-${pad(int(1, merchants), 3)}`,
      amount,
      currency,
      vendor,
      eventTime,
    });
    const settlement = (gross: bigint, cur: string, eventTime: number): Settlement => {
      const fee = feeOf(vendor, gross, cur, chance(0.2));
      return {
        eventId: `se-${pad(i)}`,
        paymentId,
        settlementId: vendor === 'ADYEN' ? `psp-${(opts.seed * 1_000_003 + i).toString(36)}` : `e2e-${pad(i)}`,
        vendor,
        grossAmount: gross,
        fee,
        netAmount: gross - fee,
        currency: cur,
        settledAt: eventTime - int(0, 6) * HOUR,
        eventTime,
      };
    };
    /** A gross amount off by a non-zero delta, still positive. */
    const offAmount = () => {
      const delta = BigInt(int(1, 500_000)) * (chance(0.5) ? 1n : -1n);
      return amount + delta > 0n ? amount + delta : amount - delta;
    };
    const onTime = () => t0 + int(10 * MINUTE, Math.floor(0.9 * D));
    const intend = (finalStatus: Reconciliation['status'], finalDecidedAt: number, difference: bigint | null, certainIntermediate: Reconciliation['status'] | null = null) =>
      intents.set(paymentId, { scenario, finalStatus, finalDecidedAt, difference, certainIntermediate });
    const pairStatus = (gross: bigint) => (gross === amount ? 'MATCHED' : 'AMOUNT_MISMATCH');

    switch (scenario) {
      case 'matched':
      case 'amount-mismatch': {
        const p = payment(t0);
        const s = settlement(scenario === 'matched' ? amount : offAmount(), currency, onTime());
        emit('payments', p, p.eventTime);
        emit('settlements', s, s.eventTime);
        intend(pairStatus(s.grossAmount), s.eventTime, s.grossAmount - amount);
        break;
      }
      case 'currency-mismatch': {
        const p = payment(t0);
        const other = pick(CURRENCIES.filter((c) => c !== currency));
        // Sometimes the very same digits: still a mismatch, amounts in different currencies are not compared.
        const s = settlement(chance(0.3) ? amount : offAmount(), other, onTime());
        emit('payments', p, p.eventTime);
        emit('settlements', s, s.eventTime);
        intend('AMOUNT_MISMATCH', s.eventTime, null);
        break;
      }
      case 'settlement-first': {
        const gross = chance(0.8) ? amount : offAmount();
        if (chance(0.5)) {
          // The vendor's report is stamped before the instruction (clock skew): it simply comes first.
          const p = payment(t0);
          const s = settlement(gross, currency, t0 - int(MINUTE, 6 * HOUR));
          emit('settlements', s, s.eventTime);
          emit('payments', p, p.eventTime);
          intend(pairStatus(gross), p.eventTime, gross - amount);
        } else {
          // The payment event is held back behind its settlement, keeping its earlier eventTime.
          const p = payment(t0);
          const s = settlement(gross, currency, t0 + int(10 * MINUTE, 6 * HOUR));
          emit('settlements', s, s.eventTime);
          emit('payments', p, s.eventTime + int(MINUTE, Math.floor(0.5 * D)));
          intend(pairStatus(gross), p.eventTime, gross - amount);
        }
        break;
      }
      case 'late-payment': {
        const gross = chance(0.8) ? amount : offAmount();
        const s = settlement(gross, currency, t0);
        const p = payment(t0 + D + int(HOUR, 48 * HOUR));
        emit('settlements', s, s.eventTime);
        emit('payments', p, p.eventTime);
        intend(pairStatus(gross), p.eventTime, gross - amount, 'UNEXPECTED_SETTLEMENT');
        break;
      }
      case 'late-settlement': {
        const gross = chance(0.8) ? amount : offAmount();
        const p = payment(t0);
        const s = settlement(gross, currency, t0 + D + int(HOUR, 72 * HOUR));
        emit('payments', p, p.eventTime);
        emit('settlements', s, s.eventTime);
        intend(pairStatus(gross), s.eventTime, gross - amount, 'MISSING_SETTLEMENT');
        break;
      }
      case 'delayed-settlement': {
        const gross = chance(0.8) ? amount : offAmount();
        const p = payment(t0);
        const s = settlement(gross, currency, t0 + int(HOUR, D - HOUR));
        emit('payments', p, p.eventTime);
        emit('settlements', s, t0 + D + int(2 * HOUR, 48 * HOUR));
        intend(pairStatus(gross), s.eventTime, gross - amount);
        break;
      }
      case 'missing-settlement': {
        const p = payment(t0);
        emit('payments', p, p.eventTime);
        intend('MISSING_SETTLEMENT', p.eventTime + D, null);
        break;
      }
      case 'unexpected-settlement': {
        const s = settlement(amount, currency, t0);
        emit('settlements', s, s.eventTime);
        intend('UNEXPECTED_SETTLEMENT', s.eventTime + D, null);
        break;
      }
      default: {
        const unknown: never = scenario;
        throw new Error(`unknown scenario ${String(unknown)}`);
      }
    }
  }

  // Retried sends: the same record again, a little later in the stream.
  const duplicates = { payments: 0, settlements: 0 };
  for (const original of pending.slice()) {
    if (!chance(duplicateRate)) continue;
    const copies = chance(1 / 3) ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      pending.push({ rec: { ...original.rec, duplicate: true }, arrival: original.arrival + int(0, 12 * HOUR), seq: seq++ });
      duplicates[original.rec.topic]++;
    }
  }

  pending.sort((a, b) => a.arrival - b.arrival || a.seq - b.seq);
  const records = pending.map((p) => p.rec);
  const maxEventTime = records.reduce((m, r) => Math.max(m, r.timestamp), 0);
  return { records, intents, duplicates, maxEventTime };
}

function chooseScenario(ticket: number): PaymentScenario {
  let left = ticket;
  for (const [scenario, weight] of WEIGHTS) {
    left -= weight;
    if (left <= 0) return scenario;
  }
  return WEIGHTS[WEIGHTS.length - 1]![0];
}

/** ADYEN: 1.2 % of gross rounded half-even to scale 4, plus 0.11 (not for JPY); SEPA: a flat 0.20, or none. */
function feeOf(vendor: Vendor, gross: bigint, currency: string, noFee: boolean): bigint {
  if (vendor === 'SEPA') return noFee ? 0n : 2_000n;
  const abs = gross < 0n ? -gross : gross;
  return divHalfEven(abs * 12n, 1_000n) + (currency === 'JPY' ? 0n : 1_100n);
}

/** n / d rounded half-even, for n >= 0, d > 0. */
function divHalfEven(n: bigint, d: bigint): bigint {
  const q = n / d;
  const r2 = (n % d) * 2n;
  if (r2 > d || (r2 === d && q % 2n === 1n)) return q + 1n;
  return q;
}

function pad(n: number, width = 6): string {
  return String(n).padStart(width, '0');
}

