/**
 * The Avro serde, the registry client, decimals and checked registration against the real registry
 * (Apicurio, Confluent-compatible API). Subjects are unique per run and deleted at the end.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import avro from 'avsc';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { ccompatUrl } from '../../infra/registry.js';
import {
  AvroDecodeError,
  AvroEncodeError,
  DecimalError,
  RegistryAuthError,
  RegistryUnavailableError,
  SchemaIncompatibleError,
  SchemaRegistryClient,
  SchemaResolutionError,
  TrailingBytesError,
  TruncatedRecordError,
  UnknownSchemaIdError,
  WrongMagicByteError,
  avroSerde,
  checkSchemas,
  formatDecimal,
  fromTwosComplement,
  parseDecimal,
  registerSchemas,
  toTwosComplement,
} from '../../schemas/index.js';

const url = () => ccompatUrl(inject('schemaRegistryUrl'));
const client = new SchemaRegistryClient({ url: url() });
const run = randomUUID().slice(0, 8);
const subjects = new Set<string>();
/** A topic name unique to this run; its subject is remembered for deletion. */
const topicName = (name: string) => {
  const topic = `weir-test-${name}-${run}`;
  subjects.add(`${topic}-value`);
  return topic;
};

/** A port nothing listens on (taken from the OS, then released). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

afterAll(async () => {
  for (const s of subjects) await client.deleteSubject(s, { permanent: true }).catch(() => undefined);
});

interface PaymentV1 {
  paymentId: string;
  amount: bigint;
  fee: bigint | null;
  eventTime: number;
  note: string;
}
interface PaymentV2 extends PaymentV1 {
  channel: string;
}

const decimal = (precision: number, scale: number) => ({ type: 'bytes', logicalType: 'decimal', precision, scale });
const fieldsV1 = [
  { name: 'paymentId', type: 'string' },
  { name: 'amount', type: decimal(38, 4) },
  { name: 'fee', type: ['null', decimal(10, 2)], default: null },
  { name: 'eventTime', type: { type: 'long', logicalType: 'timestamp-millis' } },
  { name: 'note', type: 'string' },
];
const record = (fields: object[], name = 'Payment') => ({ type: 'record', name, namespace: 'weir.test', fields });
const V1 = record(fieldsV1);
// adds a field with a default: BACKWARD and FORWARD compatible
const V2 = record([...fieldsV1, { name: 'channel', type: 'string', default: 'web' }]);
// removes 'note', which v1/v2 readers need (no default): not FORWARD compatible
const V3 = record([...fieldsV1.filter((f) => f.name !== 'note'), { name: 'channel', type: 'string', default: 'web' }]);
// adds a required field: not BACKWARD compatible
const V2_VENDOR = record([...fieldsV1, { name: 'vendor', type: 'string' }]);

const BIG = '12345678901234567890.1234';
const payment = (id: string, amount = BIG): PaymentV1 => ({
  paymentId: id,
  amount: parseDecimal(amount, 4),
  fee: parseDecimal('12.34', 2),
  eventTime: 1_732_406_400_123,
  note: `note ${id}`,
});

describe('decimal ↔ bigint', () => {
  it('parses and formats exactly, refusing what does not fit', () => {
    expect(parseDecimal('123.45', 4)).toBe(1234500n);
    expect(formatDecimal(1234500n, 4)).toBe('123.4500');
    expect(parseDecimal(BIG, 4)).toBe(123456789012345678901234n);
    expect(formatDecimal(123456789012345678901234n, 4)).toBe(BIG);
    expect(parseDecimal('-0.5', 2)).toBe(-50n);
    expect(formatDecimal(-50n, 2)).toBe('-0.50');
    expect(formatDecimal(-5n, 0)).toBe('-5');
    expect(parseDecimal('1.2300', 2)).toBe(123n); // trailing zeros are exact
    expect(parseDecimal('1.5E+3', 0)).toBe(1500n);
    expect(parseDecimal('.5', 1)).toBe(5n);
    expect(() => parseDecimal('1.234', 2)).toThrow(DecimalError);
    expect(() => parseDecimal('1.234', 2)).toThrow(/more than 2 decimal places/);
    expect(() => parseDecimal('abc', 2)).toThrow(/not a decimal number/);
    expect(() => parseDecimal('1000.00', 2, 5)).toThrow(/more than 5 digits/);
  });

  it('writes the bytes Java BigInteger#toByteArray writes (two’s complement, big-endian, minimal)', () => {
    // expected values computed independently (Python int.to_bytes(signed=True), Java's length rule)
    const vectors: Array<[bigint, string]> = [
      [0n, '00'],
      [1n, '01'],
      [-1n, 'ff'],
      [127n, '7f'],
      [128n, '0080'],
      [-128n, '80'],
      [-129n, 'ff7f'],
      [255n, '00ff'],
      [-100n, '9c'],
      [123456789012345678901234n, '1a249b1f10a06c96aff2'],
      [-123456789012345678901234n, 'e5db64e0ef5f9369500e'],
      [10n ** 38n - 1n, '4b3b4ca85a86c47a098a223fffffffff'],
    ];
    for (const [v, hex] of vectors) {
      expect(toTwosComplement(v).toString('hex'), String(v)).toBe(hex);
      expect(fromTwosComplement(Buffer.from(hex, 'hex'))).toBe(v);
    }
  });

  it('is an avsc logical type on bytes and fixed that refuses values out of precision', () => {
    const t = client.parse(record([{ name: 'x', type: decimal(5, 2) }, { name: 'y', type: { type: 'fixed', name: 'F', size: 4, logicalType: 'decimal', precision: 9, scale: 3 } }], 'D'));
    const v = { x: -99999n, y: -123456789n };
    expect(t.fromBuffer(t.toBuffer(v))).toEqual(v);
    expect(t.isValid({ x: 100000n, y: 0n })).toBe(false);
    expect(t.isValid({ x: 1.5, y: 0n })).toBe(false); // numbers are not exact: refused
    expect(() => t.toBuffer({ x: 100000n, y: 0n })).toThrow(/more than 5 digits/);
    expect(() => client.parse(record([{ name: 'x', type: { type: 'bytes', logicalType: 'decimal', scale: 2 } }], 'E'))).toThrow(/precision/);
  });
});

describe('avroSerde on the real registry', () => {
  it('round-trips decimals (exact bigints) and timestamp-millis (numbers) in Confluent wire format', async () => {
    const topic = topicName('roundtrip');
    const serde = avroSerde<PaymentV1>(client, V1);
    const values = [payment('p-1'), { ...payment('p-2', '-0.0001'), fee: null }, payment('p-3', '-99999999999999999999999999999999.9999')];
    for (const value of values) {
      const bytes = await serde.serialize(value, { topic });
      const back = await serde.deserialize(bytes, { topic });
      expect(back).toEqual(value);
      expect(typeof back.eventTime).toBe('number');
      expect(typeof back.amount).toBe('bigint');
    }

    const bytes = await serde.serialize(values[0]!, { topic });
    const registered = await client.latest(`${topic}-value`);
    expect(registered?.version).toBe(1);
    expect(bytes[0]).toBe(0); // magic byte
    expect(bytes.readInt32BE(1)).toBe(registered!.id); // 4-byte big-endian schema id
    // the body is plain Avro: a reader without logical types sees the decimal as Java writes it
    const plain = avro.Type.forSchema(JSON.parse(registered!.schema) as avro.Schema);
    const raw = plain.fromBuffer(bytes.subarray(5)) as { amount: Buffer; eventTime: number };
    expect(raw.amount.toString('hex')).toBe('1a249b1f10a06c96aff2');
    expect(raw.eventTime).toBe(1_732_406_400_123);
  });

  it('decodes records written earlier with a fresh client (no cache), and looks ids up without registering', async () => {
    const topic = topicName('fresh');
    const written = await Promise.all([payment('a'), payment('b', '7.5')].map((v) => avroSerde<PaymentV1>(client, V1).serialize(v, { topic })));

    const freshClient = new SchemaRegistryClient({ url: url() });
    const fresh = avroSerde<PaymentV1>(freshClient, V1, { autoRegister: false });
    expect((await fresh.deserialize(written[0]!, { topic })).paymentId).toBe('a');
    expect((await fresh.deserialize(written[1]!, { topic })).amount).toBe(75000n);
    // lookup by content finds the same id
    expect((await fresh.serialize(payment('c'), { topic })).readInt32BE(1)).toBe(written[0]!.readInt32BE(1));
    // and without registering, an unknown schema is refused rather than registered
    const other = avroSerde<PaymentV2>(freshClient, V2, { autoRegister: false });
    await expect(other.serialize({ ...payment('d'), channel: 'app' }, { topic })).rejects.toThrow(/has no such schema registered/);
    expect(await freshClient.versions(`${topic}-value`)).toEqual([1]);
  });

  it('evolves: v1 records read by a v2 serde get the new field’s default, and v2 records read by v1 drop it', async () => {
    const topic = topicName('evolve');
    const subject = `${topic}-value`;
    const v1 = avroSerde<PaymentV1>(client, V1);
    const oldBytes = await v1.serialize(payment('old'), { topic });

    const [reg] = await registerSchemas(client, [{ subject, schema: V2 }]);
    expect(reg).toMatchObject({ subject, version: 2, new: true });
    expect(reg!.id).not.toBe(oldBytes.readInt32BE(1));

    const v2 = avroSerde<PaymentV2>(client, V2, { autoRegister: false });
    expect(await v2.deserialize(oldBytes, { topic })).toEqual({ ...payment('old'), channel: 'web' });

    const newBytes = await v2.serialize({ ...payment('new'), channel: 'app' }, { topic });
    expect(newBytes.readInt32BE(1)).toBe(reg!.id);
    expect(await v1.deserialize(newBytes, { topic })).toEqual(payment('new'));

    // registering the same schema again changes nothing
    expect(await registerSchemas(client, [{ subject, schema: V2 }])).toEqual([{ subject, id: reg!.id, version: 2, new: false }]);
  });

  it('refuses a v3 that removes a required field, naming the subject and the field', async () => {
    const topic = topicName('remove');
    const subject = `${topic}-value`;
    await registerSchemas(client, [{ subject, schema: V1 }]);
    await registerSchemas(client, [{ subject, schema: V2 }]);
    // Removing a field only breaks readers of the old schema (FORWARD); the registry's default BACKWARD allows it.
    await client.setCompatibility(subject, 'FULL');
    expect(await client.compatibility(subject)).toBe('FULL');

    const [check] = await checkSchemas(client, [{ subject, schema: V3 }]);
    expect(check).toMatchObject({ subject, level: 'FULL', status: 'incompatible', checkedVersions: [2] });

    const err = await registerSchemas(client, [{ subject, schema: V3 }]).catch((e) => e);
    expect(err).toBeInstanceOf(SchemaIncompatibleError);
    expect(err.message).toBe(
      `subject ${subject}: the new schema is not FULL compatible with version 2: field 'note' has no default in version 2 and the new schema has no such field`,
    );
    expect(await client.versions(subject)).toEqual([1, 2]);

    // the registry refuses it too (409), and that is the same error
    const refused = await client.register(subject, V3).catch((e) => e);
    expect(refused).toBeInstanceOf(SchemaIncompatibleError);
    expect(refused.message).toContain(`subject ${subject}: the new schema is not FULL compatible`);
    expect(await client.versions(subject)).toEqual([1, 2]);
  });

  it('refuses, under the default BACKWARD, a new required field; checks every version when transitive', async () => {
    const topic = topicName('vendor');
    const subject = `${topic}-value`;
    await registerSchemas(client, [{ subject, schema: V1 }]);
    expect(await client.compatibility(subject)).toBe('BACKWARD');
    expect(await client.compatibility(`weir-test-no-such-subject-${run}`)).toBe('BACKWARD');

    const err = await registerSchemas(client, [{ subject, schema: V2_VENDOR }]).catch((e) => e);
    expect(err).toBeInstanceOf(SchemaIncompatibleError);
    expect(err.message).toBe(
      `subject ${subject}: the new schema is not BACKWARD compatible with version 1: field 'vendor' has no default in the new schema and version 1 has no such field`,
    );

    // v2 is compatible with v1; a v3 with channel required is compatible with v2 but not with v1
    await registerSchemas(client, [{ subject, schema: V2 }]);
    const V3_CHANNEL = record([...fieldsV1, { name: 'channel', type: 'string' }]);
    await client.setCompatibility(subject, 'BACKWARD_TRANSITIVE');
    const [check] = await checkSchemas(client, [{ subject, schema: V3_CHANNEL }]);
    expect(check?.status).toBe('incompatible');
    expect(check?.checkedVersions).toEqual([2, 1]);
    expect(check?.error?.message).toContain("BACKWARD_TRANSITIVE compatible with version 1: field 'channel' has no default");

    // a decimal whose scale changes would change every value: refused locally
    const rescaled = record(fieldsV1.map((f) => (f.name === 'amount' ? { ...f, type: decimal(38, 2) } : f)));
    await client.setCompatibility(subject, 'BACKWARD');
    const [scale] = await checkSchemas(client, [{ subject, schema: rescaled }]);
    expect(scale?.error?.message).toContain("field 'amount': version 2 has decimal(38, 4), which cannot be read as decimal(38, 2)");
  });

  describe('bad input: each case its typed error, saying which case it is', () => {
    const topic = topicName('bad');
    const serde = avroSerde<PaymentV1>(client, V1);
    const good = () => serde.serialize(payment('good'), { topic });
    const ctx = { topic };

    it('wrong magic byte', async () => {
      const err = await serde.deserialize(Buffer.from('{"paymentId":"x"}'), ctx).catch((e) => e);
      expect(err).toBeInstanceOf(WrongMagicByteError);
      expect(err.message).toMatch(/^wrong magic byte 0x7b \('\{': looks like JSON\)/);
      expect(err.retriable).toBe(false);
    });

    it('too short for the header, and a truncated body', async () => {
      await expect(serde.deserialize(Buffer.alloc(0), ctx)).rejects.toThrow(TruncatedRecordError);
      await expect(serde.deserialize(Buffer.from([0, 0, 1]), ctx)).rejects.toThrow(/^too short: 3 byte\(s\)/);
      const bytes = await good();
      const err = await serde.deserialize(bytes.subarray(0, bytes.length - 3), ctx).catch((e) => e);
      expect(err).toBeInstanceOf(TruncatedRecordError);
      expect(err.message).toMatch(/^truncated Avro body/);
    });

    it('unknown schema id (404: not retriable)', async () => {
      const bytes = await good();
      bytes.writeInt32BE(0x7fffffff, 1);
      const err = await serde.deserialize(bytes, ctx).catch((e) => e);
      expect(err).toBeInstanceOf(UnknownSchemaIdError);
      expect(err.message).toBe(`unknown schema id 2147483647: the registry at ${url()} has no such schema`);
      expect(err.retriable).toBe(false);
    });

    it('a writer schema that does not resolve to the reader schema names the record or the field', async () => {
      const other = avroSerde<{ x: number }>(client, record([{ name: 'x', type: 'int' }], 'Other'));
      const otherBytes = await other.serialize({ x: 1 }, { topic: topicName('other') });
      const err = await serde.deserialize(otherBytes, ctx).catch((e) => e);
      expect(err).toBeInstanceOf(SchemaResolutionError);
      expect(err.message).toContain(`writer schema id ${otherBytes.readInt32BE(1)} does not resolve to the reader schema`);
      expect(err.message).toContain('record weir.test.Other, which cannot be read as record weir.test.Payment');

      const stringAmount = avroSerde<object>(client, record(fieldsV1.map((f) => (f.name === 'amount' ? { ...f, type: 'string' } : f))));
      const sBytes = await stringAmount.serialize({ ...payment('s'), amount: '1.00' }, { topic: topicName('string-amount') });
      const err2 = await serde.deserialize(sBytes, ctx).catch((e) => e);
      expect(err2).toBeInstanceOf(SchemaResolutionError);
      expect(err2.message).toContain("field 'amount': writer schema id");
      expect(err2.message).toContain('has string, which cannot be read as decimal(38, 4)');
    });

    it('trailing bytes, and a body that does not decode', async () => {
      const bytes = await good();
      const err = await serde.deserialize(Buffer.concat([bytes, Buffer.from([1, 2])]), ctx).catch((e) => e);
      expect(err).toBeInstanceOf(TrailingBytesError);
      expect(err.message).toMatch(/^2 trailing byte\(s\) after the Avro record/);

      // fee is a union: index 9 does not exist
      const garbage = Buffer.concat([bytes.subarray(0, 5), Buffer.from([2, 0x61, 2, 0x01, 18])]);
      const err2 = await serde.deserialize(garbage, ctx).catch((e) => e);
      expect(err2).toBeInstanceOf(AvroDecodeError);
      expect(err2.message).toMatch(/does not decode with writer schema id \d+: invalid union index/);
    });

    it('a value that does not match the schema is refused on serialize, naming the field', async () => {
      const err = await serde.serialize({ ...payment('big'), amount: 10n ** 38n }, ctx).catch((e) => e);
      expect(err).toBeInstanceOf(AvroEncodeError);
      expect(err.message).toContain('amount: 100000000000000000000000000000000000000n has more than 38 digits for decimal(38, 4)');
      const err2 = await serde.serialize({ ...payment('n'), note: undefined } as unknown as PaymentV1, ctx).catch((e) => e);
      expect(err2.message).toContain('note: undefined (missing) is not string');
    });

    it('a registry that is down is retriable, named by its URL, without credentials', async () => {
      const port = await freePort();
      const down = new SchemaRegistryClient({ url: `http://weir:s3cret@127.0.0.1:${port}/apis/ccompat/v7` });
      const bytes = await good();
      const err = await avroSerde<PaymentV1>(down, V1).deserialize(bytes, ctx).catch((e) => e);
      expect(err).toBeInstanceOf(RegistryUnavailableError);
      expect(err.retriable).toBe(true);
      expect(err.message).toBe(
        `cannot reach the schema registry at http://127.0.0.1:${port}/apis/ccompat/v7 (connect ECONNREFUSED 127.0.0.1:${port}); is it running and the address right?`,
      );
      expect(err.message).not.toContain('s3cret');
      const err2 = await avroSerde<PaymentV1>(down, V1).serialize(payment('x'), ctx).catch((e) => e);
      expect(err2).toBeInstanceOf(RegistryUnavailableError);
      const err3 = await down.versions('x').catch((e) => e);
      expect(err3).toBeInstanceOf(RegistryUnavailableError);
      expect(err3.message).toBe(
        `cannot reach the schema registry at http://127.0.0.1:${port}/apis/ccompat/v7 (connect ECONNREFUSED 127.0.0.1:${port}); is it running and the address right?`,
      );
    });
  });

  it('sends basic auth from the options; refused credentials are a retriable error that never shows them', async () => {
    const seen: Array<string | undefined> = [];
    const server = http.createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error_code: 401, message: 'Unauthorized' }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/apis/ccompat/v7`;
      const authed = new SchemaRegistryClient({ url: base, auth: { username: 'weir', password: 's3cret' } });
      const errors = [await authed.subjects().catch((e) => e), await authed.versions('x').catch((e) => e)];
      const expected = `Basic ${Buffer.from('weir:s3cret').toString('base64')}`;
      expect(seen.length).toBeGreaterThanOrEqual(2);
      expect(seen.every((h) => h === expected)).toBe(true);
      for (const err of errors) {
        expect(err).toBeInstanceOf(RegistryAuthError);
        expect(err.retriable).toBe(true);
        expect(err.message).toMatch(new RegExp(`^the schema registry at ${base.replace(/[./]/g, '\\$&')} refused our credentials while`));
        expect(`${err.message} ${JSON.stringify(err)} ${String(err.cause?.message)}`).not.toMatch(/s3cret|d2Vpcjpz/);
      }
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('lists subjects', async () => {
    const topic = topicName('list');
    await avroSerde<PaymentV1>(client, V1).prepare(topic);
    expect(await client.subjects()).toContain(`${topic}-value`);
  });
});
