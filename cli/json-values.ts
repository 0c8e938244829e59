/**
 * JSON (as people write it in NDJSON files) → the values the Avro serdes take, guided by the topic's Avro schema.
 * - decimals: a string such as "101.25" (or a JSON number) becomes the exact unscaled bigint at the field's scale
 *   (parseDecimal: more decimal places than the scale, or more digits than the precision, is an error, never rounded);
 * - `timestamp-millis`: epoch milliseconds, or an ISO-8601 string ("2025-01-06T09:00:00Z");
 * - unions: null, or the value of the first branch it converts to (the usual ["null", T]);
 * - records: a missing field takes the schema's default if it has one; an unknown field is an error (a typo would
 *   otherwise vanish silently).
 * Errors name the field path; the caller adds the line.
 */
import { parseDecimal } from '../schemas/decimal.js';

type Schema = string | Schema[] | { [k: string]: unknown };

export class JsonValueError extends Error {}

export function jsonToAvroValue(schema: object, json: unknown): unknown {
  const named = new Map<string, Schema>();
  collectNamed(schema as Schema, named, undefined);
  return convert(schema as Schema, json, '', named);
}

/** The field names of a record schema (for telling a value from an envelope). */
export function recordFields(schema: object): string[] {
  const s = schema as { fields?: Array<{ name: string }> };
  return (s.fields ?? []).map((f) => f.name);
}

function collectNamed(s: Schema, named: Map<string, Schema>, ns: string | undefined): void {
  if (Array.isArray(s)) {
    for (const b of s) collectNamed(b, named, ns);
    return;
  }
  if (typeof s !== 'object' || s === null) return;
  const name = typeof s.name === 'string' ? s.name : undefined;
  const namespace = typeof s.namespace === 'string' ? s.namespace : ns;
  if (name && (s.type === 'record' || s.type === 'enum' || s.type === 'fixed' || s.type === 'error')) {
    named.set(name, s);
    if (namespace && !name.includes('.')) named.set(`${namespace}.${name}`, s);
  }
  if (Array.isArray(s.fields)) for (const f of s.fields as Array<{ type: Schema }>) collectNamed(f.type, named, namespace);
  if (s.items !== undefined) collectNamed(s.items as Schema, named, namespace);
  if (s.values !== undefined) collectNamed(s.values as Schema, named, namespace);
  if (typeof s.type === 'object') collectNamed(s.type as Schema, named, namespace);
}

function at(path: string): string {
  return path ? `field '${path}'` : 'the value';
}

function show(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

function convert(s: Schema, v: unknown, path: string, named: Map<string, Schema>): unknown {
  if (Array.isArray(s)) return convertUnion(s, v, path, named);
  if (typeof s === 'string') {
    const ref = named.get(s);
    if (ref) return convert(ref, v, path, named);
    return convertPrimitive(s, undefined, v, path);
  }
  const type = s.type;
  const logical = typeof s.logicalType === 'string' ? s.logicalType : undefined;
  if (logical === 'decimal' && (type === 'bytes' || type === 'fixed')) {
    if (typeof v !== 'string' && typeof v !== 'number') throw new JsonValueError(`${at(path)}: ${show(v)} is not a decimal; write it as a string such as "101.25"`);
    try {
      return parseDecimal(String(v), Number(s.scale ?? 0), Number(s.precision));
    } catch (err) {
      throw new JsonValueError(`${at(path)}: ${(err as Error).message}`);
    }
  }
  switch (type) {
    case 'record':
    case 'error': {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new JsonValueError(`${at(path)}: ${show(v)} is not an object (record ${String(s.name)})`);
      const fields = s.fields as Array<{ name: string; type: Schema; default?: unknown }>;
      const given = v as Record<string, unknown>;
      const unknown = Object.keys(given).filter((k) => !fields.some((f) => f.name === k));
      if (unknown.length > 0) {
        throw new JsonValueError(`${at(path ? `${path}.${unknown[0]}` : unknown[0]!)} is not in schema ${String(s.name)} (its fields: ${fields.map((f) => f.name).join(', ')})`);
      }
      const out: Record<string, unknown> = {};
      for (const f of fields) {
        const p = path ? `${path}.${f.name}` : f.name;
        if (Object.hasOwn(given, f.name)) out[f.name] = convert(f.type, given[f.name], p, named);
        else if (Object.hasOwn(f, 'default')) out[f.name] = f.default === null ? null : convert(f.type, f.default, p, named);
        else throw new JsonValueError(`${at(p)} is missing (schema ${String(s.name)} has no default for it)`);
      }
      return out;
    }
    case 'enum': {
      const symbols = s.symbols as string[];
      if (typeof v !== 'string' || !symbols.includes(v)) throw new JsonValueError(`${at(path)}: ${show(v)} is not one of ${symbols.join(', ')}`);
      return v;
    }
    case 'array': {
      if (!Array.isArray(v)) throw new JsonValueError(`${at(path)}: ${show(v)} is not an array`);
      return v.map((item, i) => convert(s.items as Schema, item, `${path}[${i}]`, named));
    }
    case 'map': {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new JsonValueError(`${at(path)}: ${show(v)} is not an object (map)`);
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, convert(s.values as Schema, x, `${path}.${k}`, named)]));
    }
    default:
      if (typeof type === 'string') return convertPrimitive(type, logical, v, path);
      return convert(type as Schema, v, path, named);
  }
}

function convertUnion(branches: Schema[], v: unknown, path: string, named: Map<string, Schema>): unknown {
  if (v === null) {
    if (branches.includes('null')) return null;
    throw new JsonValueError(`${at(path)} may not be null`);
  }
  let first: Error | undefined;
  for (const b of branches) {
    if (b === 'null') continue;
    try {
      return convert(b, v, path, named);
    } catch (err) {
      first ??= err as Error;
    }
  }
  throw first ?? new JsonValueError(`${at(path)}: ${show(v)} matches no branch of the union`);
}

function convertPrimitive(type: string, logical: string | undefined, v: unknown, path: string): unknown {
  switch (type) {
    case 'null':
      if (v !== null) throw new JsonValueError(`${at(path)}: ${show(v)} is not null`);
      return null;
    case 'boolean':
      if (typeof v !== 'boolean') throw new JsonValueError(`${at(path)}: ${show(v)} is not true or false`);
      return v;
    case 'string':
      if (typeof v !== 'string') throw new JsonValueError(`${at(path)}: ${show(v)} is not a string`);
      return v;
    case 'int': {
      const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < -(2 ** 31) || n >= 2 ** 31) throw new JsonValueError(`${at(path)}: ${show(v)} is not a 32-bit integer`);
      return n;
    }
    case 'long': {
      if (logical === 'timestamp-millis' || logical === 'local-timestamp-millis') return timestampMillis(v, path);
      const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
      if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new JsonValueError(`${at(path)}: ${show(v)} is not an integer (within ±2^53)`);
      return n;
    }
    case 'float':
    case 'double':
      if (typeof v !== 'number') throw new JsonValueError(`${at(path)}: ${show(v)} is not a number`);
      return v;
    case 'bytes':
      if (typeof v !== 'string') throw new JsonValueError(`${at(path)}: ${show(v)} is not a base64 string`);
      return Buffer.from(v, 'base64');
    default:
      throw new JsonValueError(`${at(path)}: schema type '${type}' is not supported in NDJSON input`);
  }
}

/** Epoch milliseconds from a number, a string of digits, or an ISO-8601 date-time. */
export function timestampMillis(v: unknown, path = ''): number {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  if (typeof v === 'string') {
    if (/^-?\d+$/.test(v)) return Number(v);
    const t = Date.parse(v);
    if (/^\d{4}-\d{2}-\d{2}/.test(v) && Number.isFinite(t)) return t;
  }
  throw new JsonValueError(`${at(path)}: ${show(v)} is not a time; give epoch milliseconds or an ISO-8601 date-time such as "2025-01-06T09:00:00Z"`);
}
