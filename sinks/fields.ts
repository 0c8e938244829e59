/**
 * Reading the fields of a decoded output record for a database, exactly.
 * - decimals arrive as bigint UNSCALED values at the field's fixed scale (schemas/types.ts) and leave as decimal
 *   text at that scale (101250000n at scale 6 → "101.250000"), checked against the column's precision;
 *   no floating point anywhere;
 * - timestamps arrive as epoch milliseconds and leave as ISO-8601 text (exact to the millisecond);
 * - anything missing or of the wrong type throws `RecordShapeError` naming the field, so the record stalls its
 *   partition instead of failing a whole flush.
 */
import { formatDecimal } from '../schemas/decimal.js';
import { RecordShapeError } from './errors.js';

export type Fields = Record<string, unknown>;

export function asFields(value: unknown): Fields {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new RecordShapeError(`the value must be an object, got ${describe(value)}`);
  }
  return value as Fields;
}

export function str(o: Fields, name: string): string {
  const v = o[name];
  if (typeof v !== 'string') throw wrong(name, 'a string', v);
  return v;
}

export function optStr(o: Fields, name: string): string | null {
  const v = o[name];
  return v === null || v === undefined ? null : str(o, name);
}

export function bool(o: Fields, name: string): boolean {
  const v = o[name];
  if (typeof v !== 'boolean') throw wrong(name, 'a boolean', v);
  return v;
}

export function oneOf<T extends string>(o: Fields, name: string, allowed: readonly T[]): T {
  const v = o[name];
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) throw wrong(name, `one of ${allowed.join(', ')}`, v);
  return v as T;
}

/** A 32-bit int (Avro `int`). */
export function int(o: Fields, name: string): number {
  const v = integer(o, name);
  if (v < -(2n ** 31n) || v >= 2n ** 31n) throw wrong(name, 'a 32-bit integer', o[name]);
  return Number(v);
}

/** A 64-bit integer (Avro `long`), as decimal text for a bigint column. */
export function long(o: Fields, name: string): string {
  const v = integer(o, name);
  if (v < -(2n ** 63n) || v >= 2n ** 63n) throw wrong(name, 'a 64-bit integer', o[name]);
  return v.toString();
}

/** Epoch milliseconds → ISO-8601 text. */
export function millis(o: Fields, name: string): string {
  const v = integer(o, name);
  const d = new Date(Number(v));
  if (Number.isNaN(d.getTime())) throw wrong(name, 'epoch milliseconds', o[name]);
  return d.toISOString();
}

/** A decimal(precision, scale) given as its unscaled bigint → exact decimal text. */
export function dec(o: Fields, name: string, precision: number, scale: number): string {
  const v = o[name];
  if (typeof v !== 'bigint') throw wrong(name, `an unscaled decimal (bigint) at scale ${scale}`, v);
  const abs = v < 0n ? -v : v;
  if (abs >= 10n ** BigInt(precision)) {
    throw new RecordShapeError(`field '${name}' ${decimalText(v, scale)} does not fit decimal(${precision}, ${scale})`);
  }
  return decimalText(v, scale);
}

export function optDec(o: Fields, name: string, precision: number, scale: number): string | null {
  const v = o[name];
  return v === null || v === undefined ? null : dec(o, name, precision, scale);
}

/** Unscaled bigint → decimal text at `scale` (1234500n, 4 → "123.4500"): the schemas' own exact formatter. */
export const decimalText: (unscaled: bigint, scale: number) => string = formatDecimal;

function integer(o: Fields, name: string): bigint {
  const v = o[name];
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
  throw wrong(name, 'an integer', v);
}

function wrong(name: string, what: string, v: unknown): RecordShapeError {
  return new RecordShapeError(`field '${name}' must be ${what}, got ${describe(v)}`);
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'object') return Array.isArray(v) ? 'an array' : 'an object';
  return `${typeof v} ${String(v)}`;
}
