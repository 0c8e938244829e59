/**
 * What a topic holds beyond what read_committed consumers see: the records of open and aborted transactions.
 * kafkajs exposes no read_uncommitted reader without a consumer group, so this asks the broker directly through the
 * cluster kafkajs keeps internal, with the fetch runtime/partition-reader.ts uses for read_committed.
 */
import { createRequire } from 'node:module';
import { connectCluster, fetchPartition, type Cluster } from '../../runtime/partition-reader.js';
import { kafka } from './kafka.js';

const require = createRequire(import.meta.url);
const Batch = require('kafkajs/src/consumer/batch') as new (topic: string, fetchedOffset: string, partitionData: unknown) => {
  messages: Array<{ offset: string }>;
  messagesWithinOffset: Array<{ offset: string }>;
};

const READ_UNCOMMITTED = 0;
const READ_COMMITTED = 1;

/** kafkajs's cluster as runtime/partition-reader.ts uses it, with its look-up of partition ends (at the level it was connected at). */
interface ProbeCluster extends Cluster {
  fetchTopicsOffset(
    topics: Array<{ topic: string; fromBeginning: boolean; partitions: Array<{ partition: number }> }>,
  ): Promise<Array<{ topic: string; partitions: Array<{ partition: number; offset: string }> }>>;
}

const connectProbe = async (isolationLevel: number) => (await connectCluster(kafka(), isolationLevel)) as ProbeCluster;

/** One connection per isolation level, kept for repeated looks at the same topics. */
export class TransactionProbe {
  private constructor(
    private readonly uncommitted: ProbeCluster,
    private readonly committed: ProbeCluster,
  ) {}

  static async connect(): Promise<TransactionProbe> {
    return new TransactionProbe(await connectProbe(READ_UNCOMMITTED), await connectProbe(READ_COMMITTED));
  }

  private static async ends(cluster: ProbeCluster, topic: string, partitions: number): Promise<number[]> {
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
        const data = await fetchPartition(this.uncommitted, topic, partition, offset, READ_UNCOMMITTED);
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
