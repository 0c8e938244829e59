/**
 * Bad Avro input on the real broker and registry: a Worker (exactly_once) whose source reads with avroSerde and
 * validates. Each bad record lands once in the dead-letter topic with headers naming the case and its coordinates;
 * every good record's output appears exactly once. A registry outage stalls the source instead of dead-lettering.
 */
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { Producer } from 'kafkajs';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { ccompatUrl } from '../../infra/registry.js';
import { Serdes, TopologyBuilder, Worker, partitionForKey, type Processor, type ProcessorContext, type Record } from '../../index.js';
import { SchemaRegistryClient, avroSerde, formatDecimal, parseDecimal, type AvroSerde } from '../../schemas/index.js';
import { brokers, createTopics, drained, kafka, readAll, unique, waitFor } from '../helpers/kafka.js';

const PARTITIONS = 3;
const registryUrl = () => ccompatUrl(inject('schemaRegistryUrl'));
const client = new SchemaRegistryClient({ url: registryUrl() });
const quiet = pino({ level: 'error' });
const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'weir-avro-dlq-'));
const subjects: string[] = [];
const workers: Worker[] = [];

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop().catch(() => undefined)));
  for (const s of subjects) await client.deleteSubject(s, { permanent: true }).catch(() => undefined);
});

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

function topology(input: string, output: string, serde: AvroSerde<Payment>) {
  return new TopologyBuilder()
    .addSource('payments', {
      topics: [input],
      keySerde: Serdes.string(),
      valueSerde: serde,
      validate: (_key: string, v: Payment) => (v.amount > 0n ? undefined : `amount must be positive, got ${formatDecimal(v.amount, 4)}`),
    })
    .addProcessor('format', () => new Format(), 'payments')
    .addSink('out', { topic: output, keySerde: Serdes.string(), valueSerde: Serdes.json<Out>() }, 'format')
    .build();
}

/** Send one record at a time, keyed like the Java client, and return where it landed. */
async function send(producer: Producer, topic: string, key: string, value: Buffer): Promise<{ partition: number; offset: string }> {
  const partition = partitionForKey(Buffer.from(key), PARTITIONS);
  const [meta] = await producer.send({ topic, acks: -1, messages: [{ key, value, partition }] });
  return { partition, offset: meta!.baseOffset! };
}

const headerText = (h: unknown): string | undefined => (h === undefined ? undefined : Buffer.isBuffer(h) ? h.toString('utf8') : String(h));

const payment = (id: string, amount: string): Payment => ({ paymentId: id, amount: parseDecimal(amount, 4), eventTime: 1_732_406_400_000 });

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

    const worker = new Worker({
      applicationId: app,
      topology: topology(input, output, avroSerde<Payment>(new SchemaRegistryClient({ url: registryUrl() }), PAYMENT)),
      brokers: brokers(),
      stateDir: tmp(),
      guarantee: 'exactly_once',
      logger: quiet,
    });
    workers.push(worker);
    let deadLettered = 0;
    worker.on('dead-letter', () => deadLettered++);
    await worker.start();
    await waitFor('the input to drain', () => drained(app, input), 60_000, 250);
    await worker.stop();

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
    const target = new URL(registryUrl());
    const proxy = await FlakyProxy.start(target.hostname, Number(target.port));
    proxy.down();
    try {
      const viaProxy = new SchemaRegistryClient({ url: registryUrl().replace(`:${target.port}`, `:${proxy.port}`), requestTimeoutMs: 2000 });
      const worker = new Worker({
        applicationId: app,
        topology: topology(input, output, avroSerde<Payment>(viaProxy, PAYMENT)),
        brokers: brokers(),
        stateDir: tmp(),
        guarantee: 'exactly_once',
        logger: quiet,
      });
      workers.push(worker);
      let deadLettered = 0;
      worker.on('dead-letter', () => deadLettered++);
      await worker.start();

      // it keeps trying while the registry is unreachable, and dead-letters nothing
      await waitFor('the worker to try the registry repeatedly', () => proxy.refused >= 3, 60_000, 100);
      expect(deadLettered).toBe(0);
      expect(await readAll(`${app}-dead-letters`, 1)).toHaveLength(0);
      expect(await readAll(output, PARTITIONS)).toHaveLength(0);

      proxy.up();
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

/** A TCP proxy to the registry; while down it resets every connection, as a crashed registry would. */
class FlakyProxy {
  refused = 0;
  private isUp = true;
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(host: string, port: number): Promise<FlakyProxy> {
    let proxy!: FlakyProxy;
    const server = net.createServer((client) => proxy.accept(client, host, port));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    proxy = new FlakyProxy(server, (server.address() as net.AddressInfo).port);
    return proxy;
  }

  private accept(client: net.Socket, host: string, port: number): void {
    if (!this.isUp) {
      this.refused++;
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(port, host);
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  }

  down(): void {
    this.isUp = false;
    for (const s of this.sockets) s.destroy();
  }

  up(): void {
    this.isUp = true;
  }

  async close(): Promise<void> {
    this.down();
    await new Promise((r) => this.server.close(r));
  }
}
