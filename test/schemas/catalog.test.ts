/**
 * The Avro contracts (schemas/avro/*.avsc) and the topic catalog (schemas/catalog.ts).
 * Pure unit test: parses the schemas with avsc, checks the project's rules on them; no registry.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import avsc from 'avsc';
import { describe, expect, it } from 'vitest';
import { avroSchemaDir, contractOf, subjectOf, topicContracts, type TopicContract } from '../../schemas/catalog.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

interface FieldVisit {
  /** dotted path, e.g. Reconciliation.difference */
  path: string;
  field: JsonObject;
  /** the field's type with a ["null", T] union unwrapped to T */
  type: Json;
  nullable: boolean;
}

const schemaDir = fileURLToPath(avroSchemaDir);
const avscFiles = readdirSync(schemaDir).filter((f) => f.endsWith('.avsc')).sort();
const schemaOf = (file: string): JsonObject => JSON.parse(readFileSync(`${schemaDir}/${file}`, 'utf8')) as JsonObject;

const isObject = (v: Json | undefined): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

function unwrapNullable(type: Json): { type: Json; nullable: boolean } {
  if (Array.isArray(type)) {
    const rest = type.filter((t) => t !== 'null');
    if (rest.length === 1 && type.length === 2) return { type: rest[0]!, nullable: true };
  }
  return { type, nullable: false };
}

/** Every field of every record, recursively (records nested in fields, unions, arrays and maps). */
function fieldsOf(schema: Json, prefix = ''): FieldVisit[] {
  const out: FieldVisit[] = [];
  const visitType = (type: Json, path: string): void => {
    if (Array.isArray(type)) {
      for (const branch of type) visitType(branch, path);
    } else if (isObject(type)) {
      if (type.type === 'record' || type.type === 'error') {
        const name = String(type.name);
        for (const f of (type.fields ?? []) as JsonObject[]) {
          const fieldPath = `${path}${name}.${String(f.name)}`;
          const { type: inner, nullable } = unwrapNullable(f.type!);
          out.push({ path: fieldPath, field: f, type: inner, nullable });
          visitType(f.type!, `${fieldPath}/`);
        }
      } else if (type.type === 'array') {
        visitType(type.items!, path);
      } else if (type.type === 'map') {
        visitType(type.values!, path);
      }
    }
  };
  visitType(schema, prefix);
  return out;
}

/** Every named type (record, enum, fixed) declared in the schema. */
function namedTypesOf(schema: Json): JsonObject[] {
  const out: JsonObject[] = [];
  const walk = (v: Json): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (isObject(v)) {
      if (v.type === 'record' || v.type === 'enum' || v.type === 'fixed') out.push(v);
      Object.values(v).forEach(walk);
    }
  };
  walk(schema);
  return out;
}

/** Every JSON string anywhere in the schema (type names included). */
function stringsOf(v: Json): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.flatMap(stringsOf);
  if (isObject(v)) return Object.values(v).flatMap(stringsOf);
  return [];
}

const decimal = (precision: number, scale: number) => ({ type: 'bytes', logicalType: 'decimal', precision, scale });
const QUANTITY = decimal(20, 4);
const PRICE = decimal(20, 6);
const NOTIONAL = decimal(38, 10);
const MONEY = decimal(20, 4);
/** a difference of two MONEY amounts needs one more digit */
const MONEY_DIFFERENCE = decimal(21, 4);

/** Every exact number of every schema, with its precision and scale. Nothing else may be bytes. */
const expectedDecimals: Record<string, Record<string, object>> = {
  'trade-event.avsc': { 'TradeEvent.quantity': QUANTITY, 'TradeEvent.price': PRICE },
  'position.avsc': {
    'Position.quantity': QUANTITY,
    'Position.averageCost': PRICE,
    'Position.costBasis': NOTIONAL,
    'Position.realisedPnl': NOTIONAL,
  },
  'ledger-entry.avsc': { 'LedgerEntry.amount': NOTIONAL },
  'payment.avsc': { 'Payment.amount': MONEY },
  'settlement.avsc': { 'Settlement.grossAmount': MONEY, 'Settlement.fee': MONEY, 'Settlement.netAmount': MONEY },
  'reconciliation.avsc': {
    'Reconciliation.expectedAmount': MONEY,
    'Reconciliation.settledAmount': MONEY,
    'Reconciliation.difference': MONEY_DIFFERENCE,
    'Reconciliation.fee': MONEY,
  },
};

/** Field names that denote money or quantities: each must be one of the decimals above. */
const MONEY_OR_QUANTITY = /amount|quantity|price|cost|pnl|fee|difference|notional|balance/i;
/** Field names that denote instants: each must be timestamp-millis. */
const TIMESTAMP = /(At|Time)$/;

describe('Avro schemas (schemas/avro/*.avsc)', () => {
  it('there is one schema file per value type of the nine topics', () => {
    expect(avscFiles).toHaveLength(9);
  });

  describe.each(avscFiles)('%s', (file) => {
    const schema = schemaOf(file);
    const fields = fieldsOf(schema);

    it('parses with avsc', () => {
      const type = avsc.Type.forSchema(schema as unknown as avsc.Schema);
      expect(type.typeName).toBe('record');
      // a random value of the type encodes and decodes
      const value = type.random();
      expect(type.isValid(type.fromBuffer(type.toBuffer(value)))).toBe(true);
    });

    it('is a record with a namespace under weir.*, named after its file', () => {
      expect(schema.type).toBe('record');
      expect(String(schema.namespace)).toMatch(/^weir\.(routing|trades|payments)$/);
      const kebab = String(schema.name)
        .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
        .toLowerCase();
      expect(`${kebab}.avsc`).toBe(file);
    });

    it('documents every field (recursively) and every named type', () => {
      expect(fields.length).toBeGreaterThan(0);
      for (const { path, field } of fields) {
        expect(typeof field.doc === 'string' && field.doc.trim().length > 0, `${path} has no doc`).toBe(true);
      }
      for (const named of namedTypesOf(schema)) {
        expect(typeof named.doc === 'string' && named.doc.trim().length > 0, `type ${String(named.name)} has no doc`).toBe(true);
      }
    });

    it('uses no float or double anywhere', () => {
      const strings = stringsOf(schema);
      expect(strings).not.toContain('float');
      expect(strings).not.toContain('double');
    });

    it('keeps money and quantities exact: decimals with the agreed precision and scale', () => {
      const expected = expectedDecimals[file] ?? {};
      const actual: Record<string, object> = {};
      for (const { path, type } of fields) {
        const isBytes = type === 'bytes' || (isObject(type) && type.type === 'bytes');
        if (isBytes) actual[path] = type as object;
        if (MONEY_OR_QUANTITY.test(path.slice(path.lastIndexOf('.') + 1))) {
          expect(isBytes, `${path} looks like money or a quantity but is ${JSON.stringify(type)}`).toBe(true);
        }
      }
      expect(actual).toEqual(expected);
    });

    it('gives every instant as a long with logicalType timestamp-millis, and durations as long', () => {
      for (const { path, type } of fields) {
        const name = path.slice(path.lastIndexOf('.') + 1);
        const isTimestamp = isObject(type) && type.logicalType === 'timestamp-millis';
        if (TIMESTAMP.test(name)) {
          expect(type, `${path}`).toEqual({ type: 'long', logicalType: 'timestamp-millis' });
        }
        if (isTimestamp) expect(TIMESTAMP.test(name), `${path} is a timestamp; name it *At or *Time`).toBe(true);
        if (name.endsWith('Ms')) expect(type, `${path}`).toBe('long');
      }
      for (const s of stringsOf(schema)) expect(s).not.toMatch(/^(timestamp-micros|local-timestamp-.*|date|time-.*)$/);
    });

    it('declares enums as Avro enums, with a default only where one is documented', () => {
      for (const named of namedTypesOf(schema).filter((t) => t.type === 'enum')) {
        const symbols = named.symbols as string[];
        expect(symbols.length).toBeGreaterThan(0);
        if (named.default !== undefined) {
          expect(symbols).toContain(named.default);
          expect(String(named.doc)).toContain(`Default symbol ${String(named.default)}`);
        } else {
          expect(String(named.doc)).toContain('No default symbol');
        }
      }
    });
  });

  it('gives an enum default only to AgentStatus (AWAY)', () => {
    const withDefault = avscFiles.flatMap((f) =>
      namedTypesOf(schemaOf(f))
        .filter((t) => t.type === 'enum' && t.default !== undefined)
        .map((t) => `${String(t.name)}=${String(t.default)}`),
    );
    expect(withDefault).toEqual(['AgentStatus=AWAY']);
  });

  it('defines a named type used in several files (Vendor) identically everywhere', () => {
    const byName = new Map<string, string>();
    for (const f of avscFiles) {
      const ns = String(schemaOf(f).namespace);
      for (const t of namedTypesOf(schemaOf(f))) {
        if (t.type === 'record') continue;
        const fullName = `${ns}.${String(t.name)}`;
        const { doc: _doc, ...shape } = t;
        const seen = byName.get(fullName);
        if (seen !== undefined) expect(JSON.stringify(shape), fullName).toBe(seen);
        else byName.set(fullName, JSON.stringify(shape));
      }
    }
    expect(byName.has('weir.payments.Vendor')).toBe(true);
  });
});

describe('topic catalog (schemas/catalog.ts)', () => {
  const topics = topicContracts.map((c) => c.topic);

  it('lists the nine topics of the three applications, once each', () => {
    expect([...topics].sort()).toEqual(
      [
        'agent-events',
        'conversation-events',
        'routing-decisions',
        'trades',
        'positions',
        'ledger-entries',
        'payments',
        'settlements',
        'reconciliations',
      ].sort(),
    );
    expect(new Set(topics).size).toBe(topics.length);
  });

  it('uses every schema file, and each entry names an existing file whose content it carries', () => {
    expect(topicContracts.map((c) => c.valueSchemaFile).sort()).toEqual(avscFiles);
    for (const c of topicContracts) {
      expect(avscFiles).toContain(c.valueSchemaFile);
      expect(c.valueSchema).toEqual(schemaOf(c.valueSchemaFile));
      expect(String((c.valueSchema as JsonObject).namespace)).toBe(`weir.${c.application}`);
      expect(c.keyFormat).toBe('string');
    }
  });

  it('has the agreed keys, roles and compaction', () => {
    const summary = (c: TopicContract) => `${c.application} ${c.role} ${c.topic} [${c.key}]${c.compacted ? ' compacted' : ''}`;
    expect(topicContracts.map(summary)).toEqual([
      'routing input agent-events [tenantId]',
      'routing input conversation-events [tenantId]',
      'routing output routing-decisions [tenantId]',
      'trades input trades [accountId]',
      'trades output positions [accountId|instrument] compacted',
      'trades output ledger-entries [accountId]',
      'payments input payments [paymentId]',
      'payments input settlements [paymentId]',
      'payments output reconciliations [paymentId]',
    ]);
  });

  it('every value carries its key field(s)', () => {
    for (const c of topicContracts) {
      const names = fieldsOf(c.valueSchema as JsonObject).map((f) => f.path.split('.')[1]);
      for (const keyField of c.key.split('|')) expect(names, `${c.topic} value lacks ${keyField}`).toContain(keyField);
    }
  });

  it('every input event has a string eventId and an event timestamp', () => {
    const inputs = topicContracts.filter((c) => c.role === 'input');
    expect(inputs).toHaveLength(5);
    for (const c of inputs) {
      const byName = new Map(fieldsOf(c.valueSchema as JsonObject).map((f) => [f.path.split('.')[1], f]));
      const eventId = byName.get('eventId');
      expect(eventId?.type, `${c.topic} eventId`).toBe('string');
      expect(eventId?.nullable).toBe(false);
      const eventTime = byName.get('eventTime');
      expect(eventTime?.type, `${c.topic} eventTime`).toEqual({ type: 'long', logicalType: 'timestamp-millis' });
      expect(eventTime?.nullable).toBe(false);
    }
  });

  it('hands out schemas nobody can edit in place', () => {
    const schema = contractOf('trades').valueSchema as { name: string; fields: { name: string }[] };
    expect(Object.isFrozen(schema)).toBe(true);
    expect(Object.isFrozen(schema.fields[0])).toBe(true);
    expect(() => {
      schema.name = 'Changed';
    }).toThrow(TypeError);
  });

  it('contractOf finds a topic and rejects an unknown one, listing the known topics', () => {
    expect(contractOf('positions').compacted).toBe(true);
    expect(contractOf('settlements').valueSchemaFile).toBe('settlement.avsc');
    let message = '';
    try {
      contractOf('no-such-topic');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('no-such-topic');
    for (const t of topics) expect(message).toContain(t);
  });

  it('subjectOf follows TopicNameStrategy', () => {
    expect(subjectOf('trades')).toBe('trades-value');
    expect(topicContracts.map((c) => subjectOf(c.topic))).toContain('reconciliations-value');
  });
});
