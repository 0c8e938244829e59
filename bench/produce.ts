/**
 * Pre-produces the running-sum input (test/fixtures/running-sum.ts): key `key-<n>` from `keys` distinct keys,
 * JSON value {seq, amount}, partitioned by murmur2 of the key like the Java client (and weir's own sinks).
 * Fast on purpose: big batches, several sends in flight, no compression, no idempotence.
 */
import type { Kafka, Message } from 'kafkajs';
import { partitionForKey } from '../runtime/partitioner.js';

export interface ProduceOptions {
  topic: string;
  partitions: number;
  records: number;
  keys: number;
  /** Records per sendBatch call (spread over all partitions). Default 24,000. */
  batchRecords?: number;
  /** sendBatch calls in flight. Default 4. */
  inFlight?: number;
}

/** Same key/amount formula as test/helpers/running-sum-check.ts makeInputs. */
export function inputRecord(seq: number, keys: number): { key: string; value: { seq: number; amount: number } } {
  return { key: `key-${(seq * 7919) % keys}`, value: { seq, amount: (seq % 97) + 1 } };
}

export async function produceInput(kafka: Kafka, opts: ProduceOptions): Promise<void> {
  const batchRecords = opts.batchRecords ?? 24_000;
  const inFlight = opts.inFlight ?? 4;
  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: false });
  await producer.connect();
  const keyBytes = new Map<string, { key: Buffer; partition: number }>();
  const pending = new Set<Promise<unknown>>();
  try {
    let seq = 1;
    while (seq <= opts.records) {
      const messages: Message[] = [];
      const end = Math.min(opts.records, seq + batchRecords - 1);
      const now = String(Date.now());
      for (; seq <= end; seq++) {
        const r = inputRecord(seq, opts.keys);
        let k = keyBytes.get(r.key);
        if (!k) {
          const key = Buffer.from(r.key);
          keyBytes.set(r.key, (k = { key, partition: partitionForKey(key, opts.partitions) }));
        }
        messages.push({ key: k.key, value: Buffer.from(JSON.stringify(r.value)), partition: k.partition, timestamp: now });
      }
      const p = producer.sendBatch({ topicMessages: [{ topic: opts.topic, messages }], acks: 1 });
      pending.add(p);
      void p.finally(() => pending.delete(p)).catch(() => undefined);
      if (pending.size >= inFlight) await Promise.race(pending);
    }
    await Promise.all(pending);
  } finally {
    await producer.disconnect();
  }
}
