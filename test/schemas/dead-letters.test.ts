/**
 * Bad Avro input on the real broker and registry: a Worker (exactly_once) whose source reads with avroSerde and
 * validates. Each bad record lands once in the dead-letter topic with headers naming the case and its coordinates,
 * and is counted by stage; every good record's output appears exactly once. Under the fail policies the task stops
 * at the bad record instead, committing nothing past it. A registry outage stalls the source instead of
 * dead-lettering; schemas and ids once fetched are not asked for again.
 */
import pino from 'pino';
import type { Producer } from 'kafkajs';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  ProcessingError,
  Serdes,
  TopologyBuilder,
  partitionForKey,
  type Processor,
  type ProcessorContext,
  type Record,
  type WorkerConfig,
} from '../../index.js';
import { attachWorkerMetrics } from '../../runtime/metrics.js';
import { RegistryUnavailableError, SchemaRegistryClient, WrongMagicByteError, avroSerde, formatDecimal, parseDecimal, type AvroSerde } from '../../schemas/index.js';
import { createTopics, drained, kafka, readAll, unique, waitFor, withAdmin } from '../helpers/kafka.js';
import { registrySubjects, registryUrl } from '../helpers/registry.js';
import { OutageProxy } from '../helpers/tcp-proxy.js';
import { workerFactory } from '../helpers/workers.js';

const PARTITIONS = 3;
const { client, subjects } = registrySubjects();
const newWorker = workerFactory('avro-dlq', { guarantee: 'exactly_once', logger: pino({ level: 'error' }) });

interface Payment {
  paymentId: string;
  amount: bigint;
  eventTime: number;
}
interface Out {
  paymentId: string;
  amount: string;
}

const PAYMENT = {
  type: 'record',
  name: 'Payment',
  namespace: 'weir.test',
  fields: [
    { name: 'paymentId', type: 'string' },
    { name: 'amount', type: { type: 'bytes', logicalType: 'decimal', precision: 20, scale: 4 } },
    { name: 'eventTime', type: { type: 'long', logicalType: 'timestamp-millis' } },
  ],
};
const OTHER = { type: 'record', name: 'Other', namespace: 'weir.test', fields: [{ name: 'x', type: 'int' }] };

class Format implements Processor<string, Payment, string, Out> {
  private ctx!: ProcessorContext<string, Out>;
  init(ctx: ProcessorContext<string, Out>): void {
    this.ctx = ctx;
  }
  async process(r: Record<string, Payment>): Promise<void> {
    await this.ctx.forward({ key: r.key, value: { paymentId: r.value.paymentId, amount: formatDecimal(r.value.amount, 4) }, timestamp: r.timestamp });
  }
}

/** Format, except that it throws on payments whose id starts with 'boom', as a bug in user code would. */
class FormatOrThrow extends Format {
  override async process(r: Record<string, Payment>): Promise<void> {
    if (r.value.paymentId.startsWith('boom')) throw new Error(`cannot format payment ${r.value.paymentId}`);
    await super.process(r);
  }
}

function topology(input: string, output: string, serde: AvroSerde<Payment>, format: () => Processor<string, Payment, string, Out> = () => new Format()) {
  return new TopologyBuilder()
    .addSource('payments', {
      topics: [input],
      keySerde: Serdes.string(),
      valueSerde: serde,
      validate: (_key: string, v: Payment) => (v.amount > 0n ? undefined : `amount must be positive, got ${formatDecimal(v.amount, 4)}`),
    })
    .addProcessor('format', format, 'payments')
    .addSink('out', { topic: output, keySerde: Serdes.string(), valueSerde: Serdes.json<Out>() }, 'format')
    .build();
}

/** Send one record at a time, keyed like the Java client, and return where it landed. */
async function send(producer: Producer, topic: string, key: string, value: Buffer, partitions = PARTITIONS): Promise<{ partition: number; offset: string }> {
  const partition = partitionForKey(Buffer.from(key), partitions);
  const [meta] = await producer.send({ topic, acks: -1, messages: [{ key, value, partition }] });
  return { partition, offset: meta!.baseOffset! };
}

const headerText = (h: unknown): string | undefined => (h === undefined ? undefined : Buffer.isBuffer(h) ? h.toString('utf8') : String(h));

const payment = (id: string, amount: string): Payment => ({ paymentId: id, amount: parseDecimal(amount, 4), eventTime: 1_732_406_400_000 });

/** A proxy to the test registry, to take it down for the clients that reach it through the proxy. */
const startProxy = (): Promise<OutageProxy> => {
  const target = new URL(registryUrl());
  return OutageProxy.start(Number(target.port), target.hostname);
};

/** A client of the test registry through `proxy`. */
const viaProxy = (proxy: OutageProxy): SchemaRegistryClient => {
  const target = new URL(registryUrl());
  return new SchemaRegistryClient({ url: registryUrl().replace(`:${target.port}`, `:${proxy.port}`), requestTimeoutMs: 2000 });
};

describe('dead letters from Avro sources (exactly_once, real broker and registry)', () => {
  it('dead-letters each bad record once, naming the case and its coordinates, and outputs each good one once', async () => {
    const input = unique('avro-payments');
    const output = unique('avro-formatted');
    const app = unique('avro-dlq-app');
    subjects.push(`${input}-value`, `${input}-other-value`);
    await createTopics([
      { topic: input, partitions: PARTITIONS },
      { topic: output, partitions: PARTITIONS },
    ]);

    const serde = avroSerde<Payment>(client, PAYMENT);
    const goodBytes = async (p: Payment) => serde.serialize(p, { topic: input });
    const sample = await goodBytes(payment('sample', '1.0000'));
    const unknownId = Buffer.from(sample);
    unknownId.writeInt32BE(0x7fffffff, 1);
    const otherBytes = await avroSerde<{ x: number }>(client, OTHER).serialize({ x: 1 }, { topic: `${input}-other` });

    const bad: Array<{ key: string; value: Buffer; stage: string; error: RegExp; cls: string }> = [
      { key: 'bad-magic', value: Buffer.from('{"paymentId":"json"}'), stage: 'deserialization', error: /^wrong magic byte 0x7b/, cls: 'WrongMagicByteError' },
      { key: 'bad-unknown-id', value: unknownId, stage: 'deserialization', error: /^unknown schema id 2147483647: the registry at .* has no such schema$/, cls: 'UnknownSchemaIdError' },
      { key: 'bad-truncated', value: sample.subarray(0, sample.length - 3), stage: 'deserialization', error: /^truncated Avro body/, cls: 'TruncatedRecordError' },
      {
        key: 'bad-unresolvable',
        value: otherBytes,
        stage: 'deserialization',
        error: /^writer schema id \d+ does not resolve to the reader schema: .*record weir\.test\.Other, which cannot be read as record weir\.test\.Payment/,
        cls: 'SchemaResolutionError',
      },
      { key: 'bad-negative', value: await goodBytes(payment('bad-negative', '-5.25')), stage: 'validation', error: /^amount must be positive, got -5\.2500$/, cls: 'Error' },
    ];
    const good = Array.from({ length: 12 }, (_, i) => payment(`p-${i}`, `${i + 1}.${String(i).padStart(4, '0')}`));

    // good and bad interleaved: g0 B0 g1 g2 B1 g3 g4 B2 g5 g6 B3 g7 g8 B4 g9 g10 g11
    const producer = kafka().producer({ allowAutoTopicCreation: false });
    await producer.connect();
    const sentBad: Array<(typeof bad)[number] & { partition: number; offset: string }> = [];
    try {
      let b = 0;
      for (const [i, p] of good.entries()) {
        await send(producer, input, p.paymentId, await goodBytes(p));
        if (i % 2 === 0 && b < bad.length) {
          const rec = bad[b++]!;
          sentBad.push({ ...rec, ...(await send(producer, input, rec.key, rec.value)) });
        }
      }
      expect(sentBad).toHaveLength(5);
    } finally {
      await producer.disconnect();
    }

    const worker = newWorker({ applicationId: app, topology: topology(input, output, avroSerde<Payment>(new SchemaRegistryClient({ url: registryUrl() }), PAYMENT)) });
    let deadLettered = 0;
    worker.on('dead-letter', () => deadLettered++);
    const metrics = new Registry();
    const detach = attachWorkerMetrics(worker, metrics, app);
    await worker.start();
    await waitFor('the input to drain', () => drained(app, input), 60_000, 250);
    await worker.stop();
    detach();

    const dlq = await readAll(`${app}-dead-letters`, 1);
    expect(dlq).toHaveLength(5);
    for (const expected of sentBad) {
      const matches = dlq.filter(
        (m) =>
          headerText(m.headers?.['weir.dlq.topic']) === input &&
          headerText(m.headers?.['weir.dlq.partition']) === String(expected.partition) &&
          headerText(m.headers?.['weir.dlq.offset']) === expected.offset,
      );
      expect(matches, expected.key).toHaveLength(1);
      const m = matches[0]!;
      expect(m.key?.toString(), expected.key).toBe(expected.key);
      expect(m.value?.equals(expected.value), expected.key).toBe(true);
      expect(headerText(m.headers?.['weir.dlq.stage']), expected.key).toBe(expected.stage);
      expect(headerText(m.headers?.['weir.dlq.error']), expected.key).toMatch(expected.error);
      expect(headerText(m.headers?.['weir.dlq.error.class']), expected.key).toBe(expected.cls);
      expect(headerText(m.headers?.['weir.dlq.node']), expected.key).toBe('payments');
    }
    expect(deadLettered).toBe(5);
    // the counter, by stage: four records that do not decode, one that fails validation
    const counted = (await metrics.getSingleMetric('weir_dead_letters_total')!.get()).values;
    expect(counted.map((v) => ({ app: v.labels.app, stage: v.labels.stage, value: v.value })).sort((x, y) => String(x.stage).localeCompare(String(y.stage)))).toEqual([
      { app, stage: 'deserialization', value: 4 },
      { app, stage: 'validation', value: 1 },
    ]);

    const outputs = (await readAll(output, PARTITIONS)).map((m) => ({ key: m.key!.toString(), value: JSON.parse(m.value!.toString()) as Out }));
    expect(outputs).toHaveLength(good.length);
    expect(new Set(outputs.map((o) => o.key)).size).toBe(good.length);
    for (const p of good) {
      expect(outputs.find((o) => o.key === p.paymentId)?.value).toEqual({ paymentId: p.paymentId, amount: formatDecimal(p.amount, 4) });
    }
  }, 120_000);

  it('stalls on a registry outage instead of dead-lettering, and resumes when it is back', async () => {
    const input = unique('avro-outage');
    const output = unique('avro-outage-out');
    const app = unique('avro-outage-app');
    subjects.push(`${input}-value`);
    await createTopics([
      { topic: input, partitions: PARTITIONS },
      { topic: output, partitions: PARTITIONS },
    ]);
    const serde = avroSerde<Payment>(client, PAYMENT);
    const good = Array.from({ length: 6 }, (_, i) => payment(`o-${i}`, `${i + 1}.5`));
    const producer = kafka().producer({ allowAutoTopicCreation: false });
    await producer.connect();
    try {
      for (const p of good) await send(producer, input, p.paymentId, await serde.serialize(p, { topic: input }));
    } finally {
      await producer.disconnect();
    }

    // the worker reaches the registry through a proxy that can be taken down
    const proxy = await startProxy();
    proxy.down();
    try {
      const worker = newWorker({ applicationId: app, topology: topology(input, output, avroSerde<Payment>(viaProxy(proxy), PAYMENT)) });
      let deadLettered = 0;
      worker.on('dead-letter', () => deadLettered++);
      await worker.start();

      // it keeps trying while the registry is unreachable, and dead-letters nothing
      await waitFor('the worker to try the registry repeatedly', () => proxy.refused >= 3, 60_000, 100);
      expect(deadLettered).toBe(0);
      expect(await readAll(`${app}-dead-letters`, 1)).toHaveLength(0);
      expect(await readAll(output, PARTITIONS)).toHaveLength(0);

      proxy.restore();
      await waitFor('the input to drain', () => drained(app, input), 60_000, 250);
      await worker.stop();
      expect(deadLettered).toBe(0);
      expect(await readAll(`${app}-dead-letters`, 1)).toHaveLength(0);
      const outputs = (await readAll(output, PARTITIONS)).map((m) => m.key!.toString()).sort();
      expect(outputs).toEqual(good.map((p) => p.paymentId).sort());
    } finally {
      await proxy.close();
    }
  }, 120_000);
});

interface FailCase {
  name: string;
  policy: Pick<WorkerConfig, 'deserializationErrorPolicy' | 'processingErrorPolicy'>;
  /** The record the task stops at. */
  bad: (serde: AvroSerde<Payment>, topic: string) => Promise<{ key: string; value: Buffer }>;
  /** The node the error names, and what it wraps. */
  node: string;
  causeClass: new (...args: never[]) => Error;
  reason: RegExp;
}

const failCases: FailCase[] = [
  {
    name: 'an undecodable record, under deserializationErrorPolicy fail',
    policy: { deserializationErrorPolicy: 'fail' },
    bad: async () => ({ key: 'bad-magic', value: Buffer.from('{"paymentId":"json"}') }),
    node: 'payments',
    causeClass: WrongMagicByteError,
    reason: /^wrong magic byte 0x7b/,
  },
  {
    name: 'a record failing validation, under deserializationErrorPolicy fail',
    policy: { deserializationErrorPolicy: 'fail' },
    bad: async (serde, topic) => ({ key: 'negative-1', value: await serde.serialize(payment('negative-1', '-1.0000'), { topic }) }),
    node: 'payments',
    causeClass: Error,
    reason: /^amount must be positive, got -1\.0000$/,
  },
  {
    name: 'a processor exception, under processingErrorPolicy fail',
    policy: { processingErrorPolicy: 'fail' },
    bad: async (serde, topic) => ({ key: 'boom-1', value: await serde.serialize(payment('boom-1', '3.0000'), { topic }) }),
    node: 'format',
    causeClass: Error,
    reason: /^cannot format payment boom-1$/,
  },
];

describe('fail policies (exactly_once, real broker and registry)', () => {
  it.each(failCases)(
    'stops the task at $name: the error names topic/partition@offset; nothing is dead-lettered or committed past it',
    async (c) => {
      const input = unique('avro-fail');
      const output = unique('avro-fail-out');
      const app = unique('avro-fail-app');
      subjects.push(`${input}-value`);
      await createTopics([
        { topic: input, partitions: 1 },
        { topic: output, partitions: 1 },
      ]);
      const serde = avroSerde<Payment>(client, PAYMENT);
      const before = Array.from({ length: 5 }, (_, i) => payment(`f-${i}`, `${i + 1}.2500`));
      const after = [payment('f-after-0', '1.0000'), payment('f-after-1', '2.0000')];

      const worker = newWorker({
        applicationId: app,
        topology: topology(input, output, avroSerde<Payment>(new SchemaRegistryClient({ url: registryUrl() }), PAYMENT), () => new FormatOrThrow()),
        logger: pino({ level: 'silent' }),
        ...c.policy,
      });
      // a fatal error is reported as the worker's 'error' event, and stops it
      const errors: unknown[] = [];
      worker.on('error', (err) => errors.push(err));
      let deadLettered = 0;
      worker.on('dead-letter', () => deadLettered++);

      const producer = kafka().producer({ allowAutoTopicCreation: false });
      await producer.connect();
      let at: { partition: number; offset: string };
      try {
        for (const p of before) await send(producer, input, p.paymentId, await serde.serialize(p, { topic: input }), 1);
        await worker.start();
        // the good records before the bad one are processed and committed first
        await waitFor('the good records to be committed', () => drained(app, input), 60_000, 250);
        const bad = await c.bad(serde, input);
        at = await send(producer, input, bad.key, bad.value, 1);
        for (const p of after) await send(producer, input, p.paymentId, await serde.serialize(p, { topic: input }), 1);
        await waitFor('the task to fail', () => errors.length > 0, 60_000, 100);
        // the worker stops itself, and `done` rejects with the error (what makes `weir worker` exit 1)
        await expect(worker.done).rejects.toBe(errors[0]);
      } finally {
        await producer.disconnect();
      }

      expect(at.offset).toBe(String(before.length));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(ProcessingError);
      const err = errors[0] as ProcessingError;
      expect(err.processor).toBe(c.node);
      expect(err.taskId).toBe('0_0');
      expect(err.record).toEqual({ topic: input, partition: 0, offset: at.offset });
      expect(err.cause).toBeInstanceOf(c.causeClass);
      const cause = err.cause as Error;
      expect(cause.message).toMatch(c.reason);
      expect(err.message).toBe(`processor '${c.node}' of task 0_0 failed on ${input}/0@${at.offset}: ${cause.message}`);

      // nothing dead-lettered; the group's offset stops at the bad record; nothing after it was output
      expect(deadLettered).toBe(0);
      expect(await readAll(`${app}-dead-letters`, 1)).toHaveLength(0);
      const [committed] = await withAdmin((admin) => admin.fetchOffsets({ groupId: app, topics: [input] }));
      expect(committed?.partitions.map((p) => ({ partition: p.partition, offset: p.offset }))).toEqual([{ partition: 0, offset: at.offset }]);
      const outputs = (await readAll(output, 1)).map((m) => m.key!.toString());
      expect(outputs).toEqual(before.map((p) => p.paymentId));
    },
    120_000,
  );
});

describe('schemas and ids are asked for once (real registry behind a proxy)', () => {
  it('decodes another record of a schema id it has seen with the registry unreachable', async () => {
    const topic = unique('avro-cached-read');
    subjects.push(`${topic}-value`);
    const values = [payment('c-1', '1.0000'), payment('c-2', '2.5000'), payment('c-3', '3.7500')];
    const writer = avroSerde<Payment>(client, PAYMENT);
    const written = await Promise.all(values.map((v) => writer.serialize(v, { topic })));
    expect(new Set(written.map((b) => b.readInt32BE(1))).size).toBe(1);

    const proxy = await startProxy();
    try {
      const reader = viaProxy(proxy);
      const serde = avroSerde<Payment>(reader, PAYMENT, { autoRegister: false });
      expect(await serde.deserialize(written[0]!, { topic })).toEqual(values[0]);
      const seen = proxy.received;
      expect(seen).toBeGreaterThan(0);

      proxy.down();
      expect(await serde.deserialize(written[1]!, { topic })).toEqual(values[1]);
      // another serde on the same client finds the writer schema in the client
      expect(await avroSerde<Payment>(reader, PAYMENT, { autoRegister: false }).deserialize(written[2]!, { topic })).toEqual(values[2]);
      expect(proxy.received).toBe(seen);

      // a client that has not seen the id has to ask, and cannot
      const err = await avroSerde<Payment>(viaProxy(proxy), PAYMENT).deserialize(written[1]!, { topic }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RegistryUnavailableError);
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it('registers, or looks up, a schema once per subject', async () => {
    const topic = unique('avro-cached-write');
    const subject = `${topic}-value`;
    subjects.push(subject);
    let registeredId = -1;
    const proxy = await startProxy();
    try {
      const writer = viaProxy(proxy);
      const serde = avroSerde<Payment>(writer, PAYMENT);
      const first = await serde.serialize(payment('w-1', '1.0000'), { topic });
      registeredId = first.readInt32BE(1);
      const seen = proxy.received;
      expect(seen).toBeGreaterThan(0);

      proxy.down();
      const again = await serde.serialize(payment('w-2', '2.0000'), { topic });
      const other = await avroSerde<Payment>(writer, PAYMENT).serialize(payment('w-3', '3.0000'), { topic });
      expect(proxy.received).toBe(seen);
      expect([again.readInt32BE(1), other.readInt32BE(1)]).toEqual([first.readInt32BE(1), first.readInt32BE(1)]);

      // a client that has not registered it has to ask, and cannot
      const err = await avroSerde<Payment>(viaProxy(proxy), PAYMENT).serialize(payment('w-4', '4.0000'), { topic }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RegistryUnavailableError);
    } finally {
      await proxy.close();
    }

    // looked up by content (autoRegister false): once as well; a proxy of its own, so no connection of the one
    // above is reused
    const lookupProxy = await startProxy();
    try {
      const lookingUp = viaProxy(lookupProxy);
      const looked = await avroSerde<Payment>(lookingUp, PAYMENT, { autoRegister: false }).serialize(payment('w-5', '5.0000'), { topic });
      const seen = lookupProxy.received;
      expect(seen).toBeGreaterThan(0);
      lookupProxy.down();
      const lookedAgain = await avroSerde<Payment>(lookingUp, PAYMENT, { autoRegister: false }).serialize(payment('w-6', '6.0000'), { topic });
      expect([looked.readInt32BE(1), lookedAgain.readInt32BE(1)]).toEqual([registeredId, registeredId]);
      expect(lookupProxy.received).toBe(seen);
    } finally {
      await lookupProxy.close();
    }
    expect(await client.versions(subject)).toEqual([1]);
  }, 60_000);
});
