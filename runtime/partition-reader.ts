import { createRequire } from 'node:module';
import type { Kafka } from 'kafkajs';
import { WeirError } from './errors.js';

const require = createRequire(import.meta.url);
// kafkajs keeps its fetch API internal; a Batch filters aborted and control records for read_committed.
const Batch = require('kafkajs/src/consumer/batch') as new (
  topic: string,
  fetchedOffset: string,
  partitionData: unknown,
) => {
  messages: RawMessage[];
  messagesWithinOffset: RawMessage[];
};

const READ_COMMITTED = 1;

export interface RawMessage {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  timestamp: string;
  headers?: Record<string, Buffer | string | Array<Buffer | string> | undefined>;
  isControlRecord?: boolean;
}

/** The part of kafkajs's internal cluster a fetch without a consumer group needs. */
export interface Cluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  addTargetTopic(topic: string): Promise<void>;
  refreshMetadata(): Promise<void>;
  findLeaderForPartitions(topic: string, partitions: number[]): Record<string, number[]>;
  findBroker(opts: { nodeId: string }): Promise<{
    fetch(req: unknown): Promise<{ responses: Array<{ topicName: string; partitions: PartitionData[] }> }>;
  }>;
}

export interface PartitionData {
  partition: number;
  errorCode: number;
  highWatermark: string;
  lastStableOffset: string;
  /** kafkajs decodes the log start offset under this (misspelt) name. */
  lastStartOffset?: string;
  messages: RawMessage[];
}

/** kafkajs's internal cluster, connected, reading at `isolationLevel` (0 read_uncommitted, 1 read_committed). */
export async function connectCluster(kafka: Kafka, isolationLevel: number): Promise<Cluster> {
  const sym = Object.getOwnPropertySymbols(kafka).find((s) => s.description === 'private:Kafka:createCluster');
  if (!sym) throw new WeirError('this kafkajs version does not expose its cluster; weir needs kafkajs 2.2.x');
  const create = (kafka as unknown as Record<symbol, (o: object) => Cluster>)[sym]!;
  const cluster = create({ allowAutoTopicCreation: false, isolationLevel, metadataMaxAge: 300000 });
  await cluster.connect();
  return cluster;
}

/**
 * One fetch of `topic`/`partition` from `offset`, asked of its leader at `isolationLevel`: the partition's part of the
 * response (undefined if it holds none).
 */
export async function fetchPartition(
  cluster: Cluster,
  topic: string,
  partition: number,
  offset: number,
  isolationLevel: number,
): Promise<PartitionData | undefined> {
  const nodeId = Object.keys(cluster.findLeaderForPartitions(topic, [partition]))[0];
  if (nodeId === undefined) throw new WeirError(`no leader for ${topic}/${partition}`, { retriable: true });
  const broker = await cluster.findBroker({ nodeId });
  const res = await broker.fetch({
    replicaId: -1,
    isolationLevel,
    maxWaitTime: 50,
    minBytes: 1,
    maxBytes: 16 * 1024 * 1024,
    topics: [{ topic, partitions: [{ partition, fetchOffset: String(offset), maxBytes: 4 * 1024 * 1024 }] }],
  });
  return res.responses[0]?.partitions.find((p) => p.partition === partition);
}

export interface ReadOptions {
  /** Stop before this offset instead of at the last stable offset. */
  untilOffset?: number;
  /**
   * Wait up to this long for the transactions open at the first fetch to end, so that a transaction whose commit
   * has not reached this partition yet (its markers are written a moment after the commit) is read too. For reading
   * a topic whose writers are done; default 0 (read up to the last stable offset as it is).
   */
  settleMs?: number;
}

/**
 * Reads one partition from a given offset to its end, read_committed, without a consumer group.
 * Responsible for:
 * - restoring stores from changelogs and re-reading input for replay (one reader serves both);
 * - stepping over aborted transactions and control markers, so "the end" is exact.
 * kafkajs exposes no partition-assigned consumer, so this uses its internal cluster and fetch request;
 * kafkajs 2.2.4 is the final release, so these internals do not move.
 */
export class PartitionReader {
  private cluster: Cluster | null = null;

  constructor(private readonly kafka: Kafka) {}

  private async getCluster(): Promise<Cluster> {
    if (this.cluster) return this.cluster;
    const cluster = await connectCluster(this.kafka, READ_COMMITTED);
    this.cluster = cluster;
    return cluster;
  }

  /**
   * Read `topic`/`partition` from `fromOffset` (null: the log start) up to the last stable offset seen at the first
   * fetch (or `untilOffset` when given, exclusive), handing each fetched batch of data records to `onBatch`.
   * Returns the next offset to read, i.e. the end reached.
   */
  async read(
    topic: string,
    partition: number,
    fromOffset: number | null,
    onBatch: (messages: RawMessage[], nextOffset: number) => Promise<void> | void,
    opts: ReadOptions & { onProgress?: (next: number, end: number) => void } = {},
  ): Promise<number> {
    let reached = fromOffset ?? 0;
    for await (const b of this.batches(topic, partition, fromOffset, opts)) {
      if (b.messages.length > 0) await onBatch(b.messages, b.next);
      opts.onProgress?.(b.next, b.end);
      reached = b.next;
    }
    return reached;
  }

  /**
   * The same reading as a pull: one item per fetch (the first, possibly empty, tells where reading starts and ends),
   * so several partitions can be merged.
   */
  async *batches(
    topic: string,
    partition: number,
    fromOffset: number | null,
    opts: ReadOptions = {},
  ): AsyncGenerator<{ messages: RawMessage[]; next: number; end: number }> {
    const settleUntil = Date.now() + (opts.settleMs ?? 0);
    const cluster = await this.getCluster();
    await cluster.addTargetTopic(topic);
    let offset = fromOffset ?? 0;
    let end = opts.untilOffset ?? -1;
    let first = true;
    let emptyFetches = 0;
    let outOfRange = 0;
    for (;;) {
      const data = await this.fetchOnce(cluster, topic, partition, offset);
      if (data === 'out-of-range') {
        // Reading "from the start" cannot be out of range for long: a broker that just started answers so briefly.
        if (fromOffset === null && first && ++outOfRange <= 10) {
          await new Promise((r) => setTimeout(r, 300));
          continue;
        }
        throw new WeirError(`offset ${offset} is out of range for ${topic}/${partition}`, { retriable: false });
      }
      const logStart = Number(data.lastStartOffset ?? 0);
      if (offset < logStart) {
        // Records the caller asked for are gone (retention or deleteRecords): that is the caller's decision.
        if (fromOffset !== null) throw new WeirError(`offset ${offset} is out of range for ${topic}/${partition} (the log starts at ${logStart})`);
        offset = logStart;
      }
      if (end < 0) {
        if (Number(data.lastStableOffset) < Number(data.highWatermark) && Date.now() < settleUntil) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        end = Number(data.lastStableOffset);
      }
      if (first) {
        first = false;
        yield { messages: [], next: offset, end };
      }
      if (offset >= end) return;
      const batch = new Batch(topic, String(offset), data);
      const within = batch.messagesWithinOffset;
      if (within.length === 0) {
        // Nothing at or after `offset` came back: a compacted gap or a wait that timed out.
        if (++emptyFetches > 50) {
          throw new WeirError(`reading ${topic}/${partition} made no progress at offset ${offset} (end ${end})`, { retriable: true });
        }
        continue;
      }
      emptyFetches = 0;
      const messages = batch.messages.filter((m) => Number(m.offset) < end);
      offset = Math.max(Math.min(Number(within[within.length - 1]!.offset) + 1, end), offset + 1);
      yield { messages, next: offset, end };
    }
  }

  private async fetchOnce(cluster: Cluster, topic: string, partition: number, offset: number): Promise<PartitionData | 'out-of-range'> {
    for (let attempt = 0; ; attempt++) {
      try {
        const data = await fetchPartition(cluster, topic, partition, offset, READ_COMMITTED);
        if (!data) throw new WeirError(`fetch for ${topic}/${partition} returned no data`, { retriable: true });
        return data;
      } catch (err) {
        const type = (err as { type?: string }).type;
        if (type === 'OFFSET_OUT_OF_RANGE') return 'out-of-range';
        const retriable = (err as { retriable?: boolean }).retriable;
        if (!retriable || attempt >= 8) throw err;
        await cluster.refreshMetadata().catch(() => undefined);
        await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** attempt, 3000)));
      }
    }
  }

  async close(): Promise<void> {
    const c = this.cluster;
    this.cluster = null;
    if (c) await c.disconnect();
  }
}
