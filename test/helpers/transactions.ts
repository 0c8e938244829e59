/**
 * What a topic holds beyond what read_committed consumers see: the records of open and aborted transactions.
 * kafkajs exposes no read_uncommitted reader without a consumer group, so this asks the broker directly through the
 * cluster kafkajs keeps internal, as runtime/partition-reader.ts does for read_committed.
 */
import { createRequire } from 'node:module';
import type { Kafka } from 'kafkajs';
import { kafka } from './kafka.js';

const require = createRequire(import.meta.url);
const Batch = require('kafkajs/src/consumer/batch') as new (topic: string, fetchedOffset: string, partitionData: unknown) => {
  messages: Array<{ offset: string }>;
  messagesWithinOffset: Array<{ offset: string }>;
};

const READ_UNCOMMITTED = 0;
const READ_COMMITTED = 1;

interface Cluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  addTargetTopic(topic: string): Promise<void>;
  refreshMetadata(): Promise<void>;
  findLeaderForPartitions(topic: string, partitions: number[]): Record<string, number[]>;
  fetchTopicsOffset(
    topics: Array<{ topic: string; fromBeginning: boolean; partitions: Array<{ partition: number }> }>,
  ): Promise<Array<{ topic: string; partitions: Array<{ partition: number; offset: string }> }>>;
  findBroker(opts: { nodeId: string }): Promise<{
    fetch(req: unknown): Promise<{ responses: Array<{ partitions: Array<{ partition: number; errorCode: number; highWatermark: string }> }> }>;
  }>;
}

async function connectCluster(k: Kafka, isolationLevel: number): Promise<Cluster> {
  const sym = Object.getOwnPropertySymbols(k).find((s) => s.description === 'private:Kafka:createCluster');
  if (!sym) throw new Error('this kafkajs version does not expose its cluster');
  const create = (k as unknown as Record<symbol, (o: object) => Cluster>)[sym]!;
  const cluster = create({ allowAutoTopicCreation: false, isolationLevel, metadataMaxAge: 300000 });
  await cluster.connect();
  return cluster;
}

/** One connection per isolation level, kept for repeated looks at the same topics. */
export class TransactionProbe {
  private constructor(
    private readonly uncommitted: Cluster,
    private readonly committed: Cluster,
  ) {}

  static async connect(): Promise<TransactionProbe> {
    const k = kafka();
    return new TransactionProbe(await connectCluster(k, READ_UNCOMMITTED), await connectCluster(k, READ_COMMITTED));
  }

  private static async ends(cluster: Cluster, topic: string, partitions: number): Promise<number[]> {
    await cluster.addTargetTopic(topic);
    const [res] = await cluster.fetchTopicsOffset([
      { topic, fromBeginning: false, partitions: Array.from({ length: partitions }, (_, partition) => ({ partition })) },
    ]);
    const out = new Array<number>(partitions).fill(0);
    for (const p of res!.partitions) out[p.partition] = Number(p.offset);
    return out;
  }

  /**
   * Per partition, the records past the last stable offset: written inside a transaction that is still open
   * (neither committed nor aborted yet).
   */
  async openRecords(topic: string, partitions: number): Promise<number[]> {
    const [high, stable] = await Promise.all([
      TransactionProbe.ends(this.uncommitted, topic, partitions),
      TransactionProbe.ends(this.committed, topic, partitions),
    ]);
    return high.map((h, p) => h - stable[p]!);
  }

  /** The data records of a topic as read_uncommitted sees them: aborted ones included, transaction markers not. */
  async countUncommitted(topic: string, partitions: number): Promise<number> {
    const high = await TransactionProbe.ends(this.uncommitted, topic, partitions);
    let count = 0;
    for (let partition = 0; partition < partitions; partition++) {
      let offset = 0;
      while (offset < high[partition]!) {
        const nodeId = Object.keys(this.uncommitted.findLeaderForPartitions(topic, [partition]))[0];
        if (nodeId === undefined) throw new Error(`no leader for ${topic}/${partition}`);
        const broker = await this.uncommitted.findBroker({ nodeId });
        const res = await broker.fetch({
          replicaId: -1,
          isolationLevel: READ_UNCOMMITTED,
          maxWaitTime: 50,
          minBytes: 1,
          maxBytes: 16 * 1024 * 1024,
          topics: [{ topic, partitions: [{ partition, fetchOffset: String(offset), maxBytes: 4 * 1024 * 1024 }] }],
        });
        const data = res.responses[0]?.partitions.find((p) => p.partition === partition);
        if (!data || data.errorCode !== 0) throw new Error(`fetching ${topic}/${partition} at ${offset} failed (${data?.errorCode})`);
        const batch = new Batch(topic, String(offset), data);
        const within = batch.messagesWithinOffset;
        if (within.length === 0) throw new Error(`fetching ${topic}/${partition} at ${offset} returned nothing below ${high[partition]}`);
        count += batch.messages.filter((m) => Number(m.offset) < high[partition]!).length;
        offset = Number(within[within.length - 1]!.offset) + 1;
      }
    }
    return count;
  }

  async close(): Promise<void> {
    await Promise.all([this.uncommitted.disconnect(), this.committed.disconnect()]);
  }
}
