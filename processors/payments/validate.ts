import type { Payment, Settlement } from '../../schemas/types.js';

/**
 * Domain validation of the payments application's inputs, as the sources' `validate` hooks: each returns
 * why a record is invalid (it goes to the dead-letter topic), or undefined when it is fine. The checks
 * are the field docs of payment.avsc and settlement.avsc, plus what the Avro types would enforce but a
 * JSON serde does not (so tests and production reject the same records).
 */

/** decimal(20,4): at most 20 digits. */
const DECIMAL_20_LIMIT = 10n ** 20n;
const VENDORS: readonly string[] = ['ADYEN', 'SEPA'];

export function validatePayment(key: string | null, value: Payment | null): string | undefined {
  if (!isObject(value)) return 'payment value is missing';
  return (
    checkText(value.eventId, 'eventId') ??
    checkText(value.paymentId, 'paymentId') ??
    checkKey(key, value.paymentId) ??
    checkText(value.merchantId, 'merchantId') ??
    checkDecimal(value.amount, 'amount') ??
    (value.amount <= 0n ? `amount must be > 0, got ${value.amount}` : undefined) ??
    checkCurrency(value.currency, 'currency') ??
    checkVendor(value.vendor) ??
    checkTime(value.eventTime, 'eventTime')
  );
}

export function validateSettlement(key: string | null, value: Settlement | null): string | undefined {
  if (!isObject(value)) return 'settlement value is missing';
  return (
    checkText(value.eventId, 'eventId') ??
    checkText(value.paymentId, 'paymentId') ??
    checkKey(key, value.paymentId) ??
    checkText(value.settlementId, 'settlementId') ??
    checkVendor(value.vendor) ??
    checkDecimal(value.grossAmount, 'grossAmount') ??
    checkDecimal(value.fee, 'fee') ??
    (value.fee < 0n ? `fee must be >= 0, got ${value.fee}` : undefined) ??
    checkDecimal(value.netAmount, 'netAmount') ??
    (value.netAmount !== value.grossAmount - value.fee
      ? `netAmount must equal grossAmount - fee: ${value.netAmount} != ${value.grossAmount} - ${value.fee} (unscaled, scale 4)`
      : undefined) ??
    checkCurrency(value.currency, 'currency') ??
    checkTime(value.settledAt, 'settledAt') ??
    checkTime(value.eventTime, 'eventTime')
  );
}

function isObject(v: unknown): v is object {
  return typeof v === 'object' && v !== null;
}

function checkText(v: unknown, field: string): string | undefined {
  return typeof v === 'string' && v.length > 0 ? undefined : `${field} must be a non-empty string`;
}

function checkKey(key: string | null, paymentId: string): string | undefined {
  return key === paymentId ? undefined : `record key ${JSON.stringify(key)} is not the paymentId ${JSON.stringify(paymentId)}`;
}

function checkDecimal(v: unknown, field: string): string | undefined {
  if (typeof v !== 'bigint') return `${field} must be an exact decimal (bigint, scale 4), got ${typeof v}`;
  return v < DECIMAL_20_LIMIT && v > -DECIMAL_20_LIMIT ? undefined : `${field} has more than 20 digits (decimal(20,4))`;
}

function checkCurrency(v: unknown, field: string): string | undefined {
  return typeof v === 'string' && /^[A-Z]{3}$/.test(v) ? undefined : `${field} must be an ISO 4217 code, got ${JSON.stringify(v)}`;
}

function checkVendor(v: unknown): string | undefined {
  return typeof v === 'string' && VENDORS.includes(v) ? undefined : `vendor must be one of ${VENDORS.join(', ')}, got ${JSON.stringify(v)}`;
}

function checkTime(v: unknown, field: string): string | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? undefined : `${field} must be epoch milliseconds >= 0, got ${JSON.stringify(v)}`;
}
