/**
 * PartitionReader on the real broker: it reads committed records only, up to the last stable offset, and with
 * `settleMs` it waits for a transaction open at its first fetch to end instead of stopping below it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { PartitionReader } from '../../runtime/partition-reader.js';
import { createTopics, kafka, unique } from '../helpers/kafka.js';

const reader = new PartitionReader(kafka());
afterAll(() => reader.close());

async function readAll(topic: string, settleMs?: number): Promise<string[]> {
  const values: string[] = [];
  await reader.read(topic, 0, null, (messages) => void values.push(...messages.map((m) => m.value!.toString())), { settleMs });
  return values;
}

describe('PartitionReader (real broker)', () => {
  it('stops below an open transaction, or with settleMs waits for it to commit and reads it too', async () => {
    const topic = unique('reader-settle');
    await createTopics([{ topic, partitions: 1 }]);
    const producer = kafka().producer({ transactionalId: unique('reader-settle-tx'), maxInFlightRequests: 1, idempotent: true });
    await producer.connect();
    try {
      const first = await producer.transaction();
      await first.send({ topic, messages: [{ value: 'a' }, { value: 'b' }] });
      await first.commit();
      const open = await producer.transaction();
      await open.send({ topic, messages: [{ value: 'c' }] });

      expect(await readAll(topic)).toEqual(['a', 'b']); // up to the last stable offset, at once
      const started = Date.now();
      expect(await readAll(topic, 300)).toEqual(['a', 'b']); // it stays open: after waiting 300 ms, the same
      expect(Date.now() - started).toBeGreaterThanOrEqual(300);

      const reading = readAll(topic, 30_000);
      await new Promise((r) => setTimeout(r, 500));
      await open.commit();
      expect(await reading).toEqual(['a', 'b', 'c']);
    } finally {
      await producer.disconnect();
    }
  });
});
