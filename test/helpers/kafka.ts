import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, type Admin, type Producer } from 'kafkajs';
import { inject } from 'vitest';
import { PartitionReader, type RawMessage } from '../../runtime/partition-reader.js';
import { partitionForKey } from '../../runtime/partitioner.js';

export function brokers(): string {
  return process.env.KAFKA_BROKERS ?? inject('kafkaBrokers');
}

export function kafka(): Kafka {
  return new Kafka({ clientId: 'weir-test', brokers: brokers().split(','), logLevel: logLevel.NOTHING });
}

export const unique = (prefix: string): string => `${prefix}-${randomUUID().slice(0, 8)}`;

export async function withAdmin<T>(fn: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = kafka().admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

export async function createTopics(topics: Array<{ topic: string; partitions: number; compact?: boolean }>): Promise<void> {
  await withAdmin((admin) =>
    admin.createTopics({
      waitForLeaders: true,
      topics: topics.map((t) => ({
        topic: t.topic,
        numPartitions: t.partitions,
        configEntries: t.compact ? [{ name: 'cleanup.policy', value: 'compact' }] : [],
      })),
    }),
  );
}

/** Produce keyed records in batches, partitioned with murmur2 like the Java client. */
export async function produce(
  topic: string,
  partitions: number,
  records: Array<{ key: string; value: Buffer | string; timestamp?: number }>,
  producer?: Producer,
): Promise<void> {
  const p = producer ?? kafka().producer({ allowAutoTopicCreation: false });
  if (!producer) await p.connect();
  try {
    for (let i = 0; i < records.length; i += 5000) {
      const chunk = records.slice(i, i + 5000);
      await p.send({
        topic,
        acks: -1,
        messages: chunk.map((r) => ({
          key: r.key,
          value: r.value,
          partition: partitionForKey(Buffer.from(r.key), partitions),
          timestamp: r.timestamp === undefined ? undefined : String(r.timestamp),
        })),
      });
    }
  } finally {
    if (!producer) await p.disconnect();
  }
}

/** Every committed record of a topic, read without a consumer group. */
export async function readAll(topic: string, partitions: number): Promise<Array<RawMessage & { partition: number }>> {
  const reader = new PartitionReader(kafka());
  const out: Array<RawMessage & { partition: number }> = [];
  try {
    for (let p = 0; p < partitions; p++) {
      await reader.read(topic, p, null, (messages) => {
        for (const m of messages) out.push({ ...m, partition: p });
      });
    }
  } finally {
    await reader.close();
  }
  return out;
}

/** True once the group has committed offsets at the end of every partition of the topic. */
export async function drained(groupId: string, topic: string): Promise<boolean> {
  return withAdmin(async (admin) => {
    const ends = await admin.fetchTopicOffsets(topic);
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return ends.every((e) => {
      const c = committed?.partitions.find((p) => p.partition === e.partition);
      return c !== undefined && Number(c.offset) >= Number(e.high);
    });
  });
}

export async function waitFor(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 60000, everyMs = 250): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
