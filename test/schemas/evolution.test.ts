/**
 * Schema evolution on the real broker and registry (Apicurio, Confluent-compatible API).
 * - Records written with v1 of a schema are read by a Worker whose source was built with v2 (a field added with a
 *   default): every v1 record reaches the processor with the default, every v2 record with its own value.
 * - A v3 that removes a required field (no default) is refused by registerSchemas, naming the subject and the field,
 *   under FORWARD and FULL. Under the default BACKWARD it is accepted: a reader of v3 ignores the field, so the
 *   rule holds; readers still on v2 cannot read v3 records (they are dead-lettered).
 * Topics and subjects are unique per run; the subjects are deleted at the end.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { Serdes, TopologyBuilder, type Processor, type ProcessorContext, type Record } from '../../index.js';
import {
  SchemaIncompatibleError,
  SchemaRegistryClient,
  SchemaResolutionError,
  avroSerde,
  checkSchemas,
  formatDecimal,
  parseDecimal,
  registerSchemas,
  type CompatibilityLevel,
} from '../../schemas/index.js';
import { createTopics, drained, produce, readAll, unique, waitFor } from '../helpers/kafka.js';
import { registrySubjects, registryUrl } from '../helpers/registry.js';
import { workerFactory } from '../helpers/workers.js';

const PARTITIONS = 3;
const { client, subjects } = registrySubjects();
const newWorker = workerFactory('evolve', { guarantee: 'exactly_once', logger: pino({ level: 'error' }) });

/** A topic name unique to this run; its value subject is remembered for deletion. */
const topicName = (prefix: string) => {
  const topic = unique(prefix);
  subjects.push(`${topic}-value`);
  return topic;
};

interface PaymentV1 {
  paymentId: string;
  amount: bigint;
  note: string;
  eventTime: number;
}
interface PaymentV2 extends PaymentV1 {
  channel: string;
}
interface Out {
  paymentId: string;
  amount: string;
  channel: string;
}

const fieldsV1 = [
  { name: 'paymentId', type: 'string' },
  { name: 'amount', type: { type: 'bytes', logicalType: 'decimal', precision: 20, scale: 4 } },
  { name: 'note', type: 'string' },
  { name: 'eventTime', type: { type: 'long', logicalType: 'timestamp-millis' } },
];
const channel = { name: 'channel', type: 'string', default: 'web' };
const record = (fields: object[]) => ({ type: 'record', name: 'Payment', namespace: 'weir.test', fields });
const V1 = record(fieldsV1);
// adds a field with a default
const V2 = record([...fieldsV1, channel]);
// removes 'note', which has no default
const V3 = record([...fieldsV1.filter((f) => f.name !== 'note'), channel]);

const paymentV1 = (id: string, amount: string): PaymentV1 => ({ paymentId: id, amount: parseDecimal(amount, 4), note: `note ${id}`, eventTime: 1_732_406_400_000 });

/** Forwards the field v2 added, as the processor sees it. */
class Channel implements Processor<string, PaymentV2, string, Out> {
  private ctx!: ProcessorContext<string, Out>;
  init(ctx: ProcessorContext<string, Out>): void {
    this.ctx = ctx;
  }
  async process(r: Record<string, PaymentV2>): Promise<void> {
    const { paymentId, amount, channel } = r.value;
    await this.ctx.forward({ key: r.key, value: { paymentId, amount: formatDecimal(amount, 4), channel }, timestamp: r.timestamp });
  }
}

describe('schema evolution (real broker and registry)', () => {
  it('a processor built with v2 reads records written with v1, each with the new field’s default', async () => {
    const input = topicName('evolve-in');
    const output = unique('evolve-out');
    const app = unique('evolve-app');
    const subject = `${input}-value`;
    await createTopics([
      { topic: input, partitions: PARTITIONS },
      { topic: output, partitions: PARTITIONS },
    ]);

    // v1 registered, and records written with it
    const [v1] = await registerSchemas(client, [{ subject, schema: V1 }]);
    expect(v1).toMatchObject({ subject, version: 1, new: true });
    const writerV1 = avroSerde<PaymentV1>(client, V1, { autoRegister: false });
    const old = Array.from({ length: 9 }, (_, i) => paymentV1(`v1-${i}`, `${i + 1}.0500`));
    await produce(input, PARTITIONS, await Promise.all(old.map(async (p) => ({ key: p.paymentId, value: await writerV1.serialize(p, { topic: input }) }))));

    // v2 adds a field with a default: accepted under the default rule
    expect(await client.compatibility(subject)).toBe('BACKWARD');
    const [v2] = await registerSchemas(client, [{ subject, schema: V2 }]);
    expect(v2).toMatchObject({ subject, version: 2, new: true });
    expect(v2!.id).not.toBe(v1!.id);
    const writerV2 = avroSerde<PaymentV2>(client, V2, { autoRegister: false });
    const fresh = Array.from({ length: 3 }, (_, i) => ({ ...paymentV1(`v2-${i}`, `${i + 1}.7500`), channel: 'app' }));
    await produce(input, PARTITIONS, await Promise.all(fresh.map(async (p) => ({ key: p.paymentId, value: await writerV2.serialize(p, { topic: input }) }))));

    // the input really holds records of both writer schemas
    const ids = new Map((await readAll(input, PARTITIONS)).map((m) => [m.key!.toString(), m.value!.readInt32BE(1)]));
    for (const p of old) expect(ids.get(p.paymentId), p.paymentId).toBe(v1!.id);
    for (const p of fresh) expect(ids.get(p.paymentId), p.paymentId).toBe(v2!.id);

    const topology = new TopologyBuilder()
      .addSource('payments', {
        topics: [input],
        keySerde: Serdes.string(),
        valueSerde: avroSerde<PaymentV2>(new SchemaRegistryClient({ url: registryUrl() }), V2, { autoRegister: false }),
      })
      .addProcessor('channel', () => new Channel(), 'payments')
      .addSink('out', { topic: output, keySerde: Serdes.string(), valueSerde: Serdes.json<Out>() }, 'channel')
      .build();
    const worker = newWorker({ applicationId: app, topology });
    let deadLettered = 0;
    worker.on('dead-letter', () => deadLettered++);
    await worker.start();
    await waitFor('the input to drain', () => drained(app, input), 60_000, 250);
    await worker.stop();

    expect(deadLettered).toBe(0);
    expect(await readAll(`${app}-dead-letters`, 1)).toHaveLength(0);
    const outputs = new Map((await readAll(output, PARTITIONS)).map((m) => [m.key!.toString(), JSON.parse(m.value!.toString()) as Out]));
    expect(outputs.size).toBe(old.length + fresh.length);
    for (const p of old) expect(outputs.get(p.paymentId), p.paymentId).toEqual({ paymentId: p.paymentId, amount: formatDecimal(p.amount, 4), channel: 'web' });
    for (const p of fresh) expect(outputs.get(p.paymentId), p.paymentId).toEqual({ paymentId: p.paymentId, amount: formatDecimal(p.amount, 4), channel: 'app' });
  }, 120_000);

  /** A subject with v1 and v2 registered under the default rule. */
  async function subjectWithV2(prefix: string): Promise<{ topic: string; subject: string }> {
    const topic = topicName(prefix);
    const subject = `${topic}-value`;
    await registerSchemas(client, [{ subject, schema: V1 }]);
    await registerSchemas(client, [{ subject, schema: V2 }]);
    expect(await client.versions(subject)).toEqual([1, 2]);
    return { topic, subject };
  }

  it.each<CompatibilityLevel>(['FORWARD', 'FULL'])(
    'refuses, under %s, a v3 that removes a required field, naming the subject and the field',
    async (level) => {
      const { subject } = await subjectWithV2(`evolve-${level.toLowerCase()}`);
      await client.setCompatibility(subject, level);
      expect(await client.compatibility(subject)).toBe(level);
      const reason = `subject ${subject}: the new schema is not ${level} compatible with version 2: field 'note' has no default in version 2 and the new schema has no such field`;

      const [check] = await checkSchemas(client, [{ subject, schema: V3 }]);
      expect(check).toMatchObject({ subject, level, status: 'incompatible', checkedVersions: [2] });
      expect(check!.error?.message).toBe(reason);

      const err = await registerSchemas(client, [{ subject, schema: V3 }]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SchemaIncompatibleError);
      expect(err).toMatchObject({ subject, level, version: 2, message: reason });
      expect(await client.versions(subject)).toEqual([1, 2]);

      // the registry enforces the rule too: registering past the local check is refused (409) as well
      const refused = await client.register(subject, V3).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(SchemaIncompatibleError);
      const message = (refused as Error).message;
      expect(message).toMatch(new RegExp(`^subject ${subject}: the new schema is not ${level} compatible with the registered schema: the registry refused it`));
      // Apicurio names the subject and the field (its path in version 2) in its own words
      expect(message).toContain(`Incompatible artifact: ${subject}`);
      expect(message).toContain('note at /fields/2');
      expect(await client.versions(subject)).toEqual([1, 2]);
    },
    60_000,
  );

  it('accepts, under the default BACKWARD, a v3 that removes a required field; a v2 reader cannot read its records', async () => {
    const { topic, subject } = await subjectWithV2('evolve-backward');
    // no level of its own: the global default applies
    expect(await client.compatibility(subject)).toBe('BACKWARD');
    expect(await client.compatibility()).toBe('BACKWARD');

    // BACKWARD asks whether v3 reads v2's records: it does, skipping 'note'
    const [check] = await checkSchemas(client, [{ subject, schema: V3 }]);
    expect(check).toMatchObject({ subject, level: 'BACKWARD', status: 'compatible', checkedVersions: [2] });
    expect(check!.error).toBeUndefined();
    const [v3] = await registerSchemas(client, [{ subject, schema: V3 }]);
    expect(v3).toMatchObject({ subject, version: 3, new: true });
    expect(await client.versions(subject)).toEqual([1, 2, 3]);

    // a v3 reader reads v2 records without the field
    const v2Record = { ...paymentV1('p-2', '2.0000'), channel: 'app' };
    const v2Bytes = await avroSerde<PaymentV2>(client, V2, { autoRegister: false }).serialize(v2Record, { topic });
    const { note: _dropped, ...withoutNote } = v2Record;
    expect(await avroSerde<Omit<PaymentV2, 'note'>>(client, V3, { autoRegister: false }).deserialize(v2Bytes, { topic })).toEqual(withoutNote);

    // but a processor still built with v2 cannot read v3 records: each would be dead-lettered
    const v3Bytes = await avroSerde<Omit<PaymentV2, 'note'>>(client, V3, { autoRegister: false }).serialize(withoutNote, { topic });
    expect(v3Bytes.readInt32BE(1)).toBe(v3!.id);
    const err = await avroSerde<PaymentV2>(client, V2, { autoRegister: false }).deserialize(v3Bytes, { topic }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SchemaResolutionError);
    expect((err as Error).message).toBe(
      `writer schema id ${v3!.id} does not resolve to the reader schema: field 'note' has no default in the reader schema and writer schema id ${v3!.id} has no such field`,
    );
  }, 60_000);
});
