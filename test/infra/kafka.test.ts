/**
 * The local broker really does what weir's exactly-once processing relies on:
 * transactional commit/abort visible to read_committed consumers, and fencing of a
 * zombie producer by a newer one with the same transactionalId.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import kafkajs from 'kafkajs';

const { Kafka, logLevel } = kafkajs;

const kafka = new Kafka({
  clientId: 'weir-infra-test',
  brokers: inject('kafkaBrokers').split(','),
  logLevel: logLevel.NOTHING,
});
const admin = kafka.admin();
const created: string[] = [];

const unique = (prefix: string) => `${prefix}-${Date.now()}-${randomUUID().slice(0, 8)}`;

async function createTopic(prefix: string): Promise<string> {
  const topic = unique(prefix);
  expect(await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true })).toBe(true);
  created.push(topic);
  return topic;
}

/** Reads a single-partition topic from the beginning until `last` arrives; returns all values in order. */
async function readUntil(topic: string, last: string, readUncommitted: boolean): Promise<string[]> {
  const consumer = kafka.consumer({ groupId: unique('weir-infra-test'), readUncommitted });
  const values: string[] = [];
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      consumer
        .run({
          eachMessage: async ({ message }) => {
            const value = message.value?.toString() ?? '';
            values.push(value);
            if (value === last) resolve();
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return values;
}

function transactionalProducer(transactionalId: string) {
  return kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 });
}

beforeAll(async () => {
  await admin.connect();
});

afterAll(async () => {
  if (created.length) await admin.deleteTopics({ topics: created }).catch(() => {});
  await admin.disconnect();
});

describe('local Kafka broker', () => {
  it('read_committed consumers see committed transactions only', async () => {
    const topic = await createTopic('infra-txn');
    const producer = transactionalProducer(unique('infra-txn'));
    await producer.connect();
    try {
      const committed = await producer.transaction();
      await committed.send({ topic, messages: [{ value: 'c1' }, { value: 'c2' }] });
      await committed.commit();

      const aborted = await producer.transaction();
      await aborted.send({ topic, messages: [{ value: 'a1' }] });
      await aborted.abort();

      // a committed record after the aborted one: once it is read, the aborted
      // record (earlier in the same partition) would have been read too
      const after = await producer.transaction();
      await after.send({ topic, messages: [{ value: 'c3' }] });
      await after.commit();
    } finally {
      await producer.disconnect();
    }

    expect(await readUntil(topic, 'c3', false)).toEqual(['c1', 'c2', 'c3']);
    // the aborted record was really written; only the isolation level hides it
    expect(await readUntil(topic, 'c3', true)).toEqual(['c1', 'c2', 'a1', 'c3']);

    const [offsets] = await admin.fetchTopicOffsets(topic);
    // 4 records + 3 transaction markers
    expect(Number(offsets?.high)).toBe(7);
  });

  it('a second producer with the same transactionalId fences the first', async () => {
    const topic = await createTopic('infra-fence');
    const transactionalId = unique('infra-fence');
    const zombie = transactionalProducer(transactionalId);
    const successor = transactionalProducer(transactionalId);
    await zombie.connect();
    await successor.connect();
    try {
      const zombieTx = await zombie.transaction();
      await zombieTx.send({ topic, messages: [{ value: 'zombie' }] });

      // kafkajs sends the transactional InitProducerId on the first transaction(),
      // not on connect(): this is what bumps the epoch and aborts zombieTx
      const successorTx = await successor.transaction();

      const error: unknown = await zombieTx.commit().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, 'commit of the fenced producer must reject').toBeInstanceOf(Error);
      expect((error as { type?: string }).type).toMatch(/^(INVALID_PRODUCER_EPOCH|PRODUCER_FENCED)$/);

      await successorTx.send({ topic, messages: [{ value: 'successor' }] });
      await successorTx.commit();
    } finally {
      await zombie.disconnect().catch(() => {});
      await successor.disconnect();
    }

    expect(await readUntil(topic, 'successor', false)).toEqual(['successor']);
  });
});
