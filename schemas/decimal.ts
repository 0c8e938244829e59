/**
 * Avro `decimal` as exact `bigint`s.
 * - `DecimalType`: an avsc logical type for `decimal` on `bytes` (or `fixed`); the JS value is the UNSCALED
 *   integer (123.45 at scale 4 is 1234500n), the scale comes from the schema. The bytes are the unscaled value in
 *   big-endian two's complement, as the Avro spec says and as Java's `BigDecimal` conversion writes them.
 * - `parseDecimal` / `formatDecimal`: decimal text ↔ unscaled bigint, exact (no floating point anywhere).
 * Timestamps are not mapped: `timestamp-millis` stays a number of milliseconds.
 */
import avro from 'avsc';
import { DecimalError } from './errors.js';

interface DecimalSchema {
  type: unknown;
  logicalType: 'decimal';
  precision?: unknown;
  scale?: unknown;
  size?: number;
}

export class DecimalType extends avro.types.LogicalType {
  readonly precision: number;
  readonly scale: number;
  /** Byte size for `fixed`; undefined for `bytes`. */
  private readonly fixedSize: number | undefined;
  private readonly limit: bigint;

  constructor(schema: avro.Schema, opts?: unknown) {
    super(schema, opts);
    const s = schema as unknown as DecimalSchema;
    const precision = s.precision;
    const scale = s.scale ?? 0;
    if (typeof precision !== 'number' || !Number.isInteger(precision) || precision < 1) {
      throw new DecimalError(`decimal needs a positive integer precision, got ${JSON.stringify(precision)}`);
    }
    if (typeof scale !== 'number' || !Number.isInteger(scale) || scale < 0 || scale > precision) {
      throw new DecimalError(`decimal scale must be an integer from 0 to the precision (${precision}), got ${JSON.stringify(scale)}`);
    }
    const underlying = this.underlyingType;
    if (avro.Type.isType(underlying, 'fixed')) {
      const size = (underlying as avro.types.FixedType).size;
      const maxDigits = Math.floor((8 * size - 1) * Math.log10(2));
      if (precision > maxDigits) throw new DecimalError(`decimal(${precision}, ${scale}) does not fit in fixed(${size}) (at most ${maxDigits} digits)`);
      this.fixedSize = size;
    } else if (avro.Type.isType(underlying, 'bytes')) {
      this.fixedSize = undefined;
    } else {
      throw new DecimalError(`decimal must be on bytes or fixed, not ${underlying.typeName}`);
    }
    this.precision = precision;
    this.scale = scale;
    this.limit = 10n ** BigInt(precision);
  }

  /** Bytes (from the wire) → unscaled bigint. */
  protected override _fromValue(buf: unknown): bigint | undefined {
    // avsc hands over undefined when the body is truncated; decode() then reports that, so do not throw here.
    if (!Buffer.isBuffer(buf)) return undefined;
    const v = fromTwosComplement(buf);
    if (!this.fits(v)) {
      throw new DecimalError(`decimal value ${formatDecimal(v, this.scale)} has more than ${this.precision} digits (decimal(${this.precision}, ${this.scale}))`);
    }
    return v;
  }

  /** Unscaled bigint → bytes; anything else, or a value out of precision, is invalid. */
  protected override _toValue(v: unknown): Buffer | undefined {
    if (typeof v !== 'bigint') return undefined;
    if (!this.fits(v)) {
      throw new DecimalError(`decimal value ${formatDecimal(v, this.scale)} has more than ${this.precision} digits (decimal(${this.precision}, ${this.scale}))`);
    }
    const bytes = toTwosComplement(v);
    if (this.fixedSize === undefined) return bytes;
    const out = Buffer.alloc(this.fixedSize, v < 0n ? 0xff : 0x00);
    bytes.copy(out, this.fixedSize - bytes.length);
    return out;
  }

  /**
   * Schema resolution: a decimal of the same scale and no larger precision reads as is; plain bytes/fixed read as
   * unscaled values of this scale. A different scale does not resolve (the value would change by a power of ten).
   */
  protected override _resolve(writer: avro.Type): ((v: unknown) => unknown) | undefined {
    if (writer instanceof DecimalType) {
      if (writer.scale === this.scale && writer.precision <= this.precision && writer.fixedSize === this.fixedSize) return (v) => v;
      return undefined;
    }
    if (avro.Type.isType(writer, this.fixedSize === undefined ? 'bytes' : 'fixed')) {
      if (this.fixedSize !== undefined && (writer as avro.types.FixedType).size !== this.fixedSize) return undefined;
      return (buf) => this._fromValue(buf);
    }
    return undefined;
  }

  protected override _export(attrs: avro.Schema): void {
    Object.assign(attrs, { precision: this.precision, scale: this.scale });
  }

  /** `decimal(20, 4)` */
  describe(): string {
    return `decimal(${this.precision}, ${this.scale})`;
  }

  private fits(v: bigint): boolean {
    return (v < 0n ? -v : v) < this.limit;
  }
}

/** Logical types to give avsc's `Type.forSchema`. */
export const logicalTypes = { decimal: DecimalType } as const;

/** Minimal big-endian two's complement, byte for byte what java.math.BigInteger#toByteArray returns. */
export function toTwosComplement(v: bigint): Buffer {
  let bytes = 1;
  // the smallest n with -2^(8n-1) <= v < 2^(8n-1)
  while (v >= 1n << BigInt(8 * bytes - 1) || v < -(1n << BigInt(8 * bytes - 1))) bytes++;
  const u = v < 0n ? (1n << BigInt(8 * bytes)) + v : v;
  return Buffer.from(u.toString(16).padStart(2 * bytes, '0'), 'hex');
}

export function fromTwosComplement(buf: Buffer): bigint {
  if (buf.length === 0) return 0n;
  const u = BigInt(`0x${buf.toString('hex')}`);
  return (buf[0]! & 0x80) !== 0 ? u - (1n << BigInt(8 * buf.length)) : u;
}

const DECIMAL_TEXT = /^([+-])?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/**
 * Decimal text → unscaled bigint at `scale`: parseDecimal("123.45", 4) === 1234500n. Exact: text with more
 * fractional digits than the scale (other than trailing zeros) is refused, never rounded. Accepts an exponent
 * ("1.5E+3") as Java's BigDecimal#toString may write one. With `precision`, refuses values with more digits.
 */
export function parseDecimal(text: string, scale: number, precision?: number): bigint {
  if (!Number.isInteger(scale) || scale < 0) throw new DecimalError(`scale must be a non-negative integer, got ${scale}`);
  const m = DECIMAL_TEXT.exec(text.trim());
  const intPart = m?.[2] ?? '';
  const fracPart = m?.[3] ?? '';
  if (!m || intPart.length + fracPart.length === 0) throw new DecimalError(`'${text}' is not a decimal number`);
  const exponent = m[4] === undefined ? 0 : Number(m[4]);
  let digits = BigInt(`${intPart}${fracPart}` || '0');
  // value = digits × 10^(exponent − fracPart.length); unscaled = value × 10^scale
  const shift = scale + exponent - fracPart.length;
  if (shift >= 0) {
    digits *= 10n ** BigInt(shift);
  } else {
    const divisor = 10n ** BigInt(-shift);
    if (digits % divisor !== 0n) throw new DecimalError(`'${text}' has more than ${scale} decimal places; it cannot be held exactly at scale ${scale}`);
    digits /= divisor;
  }
  const unscaled = m[1] === '-' ? -digits : digits;
  if (precision !== undefined && (digits >= 10n ** BigInt(precision))) {
    throw new DecimalError(`'${text}' has more than ${precision} digits at scale ${scale} (decimal(${precision}, ${scale}))`);
  }
  return unscaled;
}

/** Unscaled bigint → plain decimal text with exactly `scale` fractional digits: formatDecimal(1234500n, 4) === "123.4500". */
export function formatDecimal(unscaled: bigint, scale: number): string {
  if (!Number.isInteger(scale) || scale < 0) throw new DecimalError(`scale must be a non-negative integer, got ${scale}`);
  const negative = unscaled < 0n;
  const digits = (negative ? -unscaled : unscaled).toString().padStart(scale + 1, '0');
  const text = scale === 0 ? digits : `${digits.slice(0, digits.length - scale)}.${digits.slice(digits.length - scale)}`;
  return negative ? `-${text}` : text;
}
