/**
 * Pre-producing bench input, fast on purpose: big batches, several sends in flight, no compression, no
 * idempotence, acks from the leader only. Messages come with their partition already chosen (murmur2 of the key,
 * like the Java client and weir's own sinks).
 * - `produceFast`: any stream of (topic, message);
 * - `produceInput`: the ceiling's running-sum input (test/fixtures/running-sum.ts): key `key-<n>` from `keys`
 *   distinct keys, JSON value {seq, amount}.
 */
import type { Kafka, Message } from 'kafkajs';
import { partitionForKey } from '../runtime/partitioner.js';
import { MAX_SEND_BYTES } from '../runtime/task-producer.js';

export interface TopicMessage {
  topic: string;
  message: Message;
}

export interface FastOptions {
  /** Records per sendBatch call (spread over all partitions). Default 24,000. */
  batchRecords?: number;
  /**
   * sendBatch calls in flight. Default 4. Concurrent calls may reach the broker in another order than they were
   * made, so input whose order per key matters (trades: NEW before its AMEND) needs 1.
   */
  inFlight?: number;
}

/** Sends every message; returns how many. */
export async function produceFast(kafka: Kafka, messages: Iterable<TopicMessage> | AsyncIterable<TopicMessage>, opts: FastOptions = {}): Promise<number> {
  const batchRecords = opts.batchRecords ?? 24_000;
  const inFlight = opts.inFlight ?? 4;
  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: false });
  await producer.connect();
  const pending = new Set<Promise<unknown>>();
  let batch = new Map<string, Message[]>();
  let bytes = new Map<string, number>();
  let count = 0;
  let sent = 0;
  const flush = async () => {
    if (count === 0) return;
    const topicMessages = [...batch].map(([topic, list]) => ({ topic, messages: list }));
    sent += count;
    batch = new Map();
    bytes = new Map();
    count = 0;
    const p = producer.sendBatch({ topicMessages, acks: 1 });
    pending.add(p);
    void p.finally(() => pending.delete(p)).catch(() => undefined);
    if (pending.size >= inFlight) await Promise.race(pending);
  };
  try {
    for await (const { topic, message } of messages) {
      let list = batch.get(topic);
      if (!list) batch.set(topic, (list = []));
      list.push(message);
      count++;
      const tp = `${topic}:${message.partition}`;
      const b = (bytes.get(tp) ?? 0) + (message.key?.length ?? 0) + ((message.value as Buffer | null)?.length ?? 0) + 64;
      bytes.set(tp, b);
      if (count >= batchRecords || b >= MAX_SEND_BYTES) await flush();
    }
    await flush();
    await Promise.all(pending);
  } finally {
    await producer.disconnect();
  }
  return sent;
}

export interface RunningSumOptions {
  topic: string;
  partitions: number;
  records: number;
  keys: number;
}

/** Same key/amount formula as test/helpers/running-sum-check.ts makeInputs. */
export function inputRecord(seq: number, keys: number): { key: string; value: { seq: number; amount: number } } {
  return { key: `key-${(seq * 7919) % keys}`, value: { seq, amount: (seq % 97) + 1 } };
}

function* runningSumMessages(opts: RunningSumOptions): Generator<TopicMessage> {
  const keyBytes = new Map<string, { key: Buffer; partition: number }>();
  const now = String(Date.now());
  for (let seq = 1; seq <= opts.records; seq++) {
    const r = inputRecord(seq, opts.keys);
    let k = keyBytes.get(r.key);
    if (!k) {
      const key = Buffer.from(r.key);
      keyBytes.set(r.key, (k = { key, partition: partitionForKey(key, opts.partitions) }));
    }
    yield { topic: opts.topic, message: { key: k.key, value: Buffer.from(JSON.stringify(r.value)), partition: k.partition, timestamp: now } };
  }
}

export async function produceInput(kafka: Kafka, opts: RunningSumOptions): Promise<void> {
  await produceFast(kafka, runningSumMessages(opts));
}
