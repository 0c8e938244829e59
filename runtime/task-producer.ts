import type { Kafka, Producer, Transaction, Message } from 'kafkajs';
import type { OutgoingRecord } from './record-collector.js';
import { errorChain } from './errors.js';

export interface TopicPartitionOffset {
  topic: string;
  partition: number;
  /** The next offset to consume. */
  offset: number;
}

/** Per topic-partition: the offset after the last record this send wrote. */
export type SendResult = Map<string, number>;

export const tpKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

/**
 * How one task talks to Kafka when it commits.
 * Exactly-once: a transactional producer per task; outputs, changelog records and input offsets in one transaction.
 * At-least-once: a shared idempotent producer; offsets committed by the consumer after the sends are acknowledged.
 */
export interface TaskProducer {
  readonly guarantee: 'exactly_once' | 'at_least_once';
  /** Exactly-once: registers the transactional id, fencing any older producer with it and aborting its open transaction. */
  init(): Promise<void>;
  send(records: OutgoingRecord[]): Promise<SendResult>;
  commit(offsets: TopicPartitionOffset[]): Promise<void>;
  abort(): Promise<void>;
  close(): Promise<void>;
}

/** A record batch of one partition must stay below the broker's message.max.bytes (1 MiB by default). */
export const MAX_SEND_BYTES = 512 * 1024;
/**
 * kafkajs 2.2.4 groups a send's messages per partition by copying the partition's list for every message, which is
 * quadratic in the messages per partition of one send (tulios/kafkajs#1576, unreleased). Small chunks keep it cheap.
 */
export const MAX_SEND_RECORDS = 500;

function toTopicMessages(records: OutgoingRecord[]): Array<{ topic: string; messages: Message[] }> {
  const byTopic = new Map<string, Message[]>();
  for (const r of records) {
    let list = byTopic.get(r.topic);
    if (!list) byTopic.set(r.topic, (list = []));
    list.push({ key: r.key, value: r.value, partition: r.partition, timestamp: String(r.timestamp), headers: r.headers });
  }
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }));
}

/** Sends in chunks below the size bound and returns, per partition, the offset after its last record. */
async function sendChunked(
  records: OutgoingRecord[],
  sendBatch: (topicMessages: Array<{ topic: string; messages: Message[] }>) => Promise<Array<{ topicName: string; partition: number; baseOffset?: string }>>,
): Promise<SendResult> {
  const result: SendResult = new Map();
  let start = 0;
  while (start < records.length) {
    let end = start;
    let bytes = 0;
    while (end < records.length && (end === start || (bytes < MAX_SEND_BYTES && end - start < MAX_SEND_RECORDS))) {
      const r = records[end]!;
      bytes += (r.key?.length ?? 0) + (r.value?.length ?? 0) + 64;
      end++;
    }
    const chunk = records.slice(start, end);
    const counts = new Map<string, number>();
    for (const r of chunk) counts.set(tpKey(r.topic, r.partition), (counts.get(tpKey(r.topic, r.partition)) ?? 0) + 1);
    const meta = await sendBatch(toTopicMessages(chunk));
    for (const m of meta) {
      const k = tpKey(m.topicName, m.partition);
      if (m.baseOffset !== undefined && m.baseOffset !== '-1') result.set(k, Number(m.baseOffset) + (counts.get(k) ?? 0));
    }
    start = end;
  }
  return result;
}

export class TransactionalTaskProducer implements TaskProducer {
  readonly guarantee = 'exactly_once' as const;
  private readonly producer: Producer;
  private txn: Transaction | null = null;

  constructor(
    kafka: Kafka,
    readonly transactionalId: string,
    private readonly groupId: string,
    transactionTimeoutMs: number,
  ) {
    this.producer = kafka.producer({
      transactionalId,
      idempotent: true,
      maxInFlightRequests: 1,
      transactionTimeout: transactionTimeoutMs,
      allowAutoTopicCreation: false,
      // Right after a commit the coordinator answers CONCURRENT_TRANSACTIONS until its markers are written;
      // retry that quickly, as the Java client does, instead of kafkajs' default 300 ms.
      retry: { initialRetryTime: 10, factor: 0.1, multiplier: 1.6, retries: 15, maxRetryTime: 2000 },
    });
  }

  /** kafkajs registers the transactional id (InitProducerId, which fences older producers) on the first transaction. */
  async init(): Promise<void> {
    await this.producer.connect();
    await this.transaction();
  }

  private async transaction(): Promise<Transaction> {
    if (!this.txn) this.txn = await this.producer.transaction();
    return this.txn;
  }

  async send(records: OutgoingRecord[]): Promise<SendResult> {
    if (records.length === 0) return new Map();
    const txn = await this.transaction();
    return sendChunked(records, (topicMessages) => txn.sendBatch({ topicMessages, acks: -1 }));
  }

  async commit(offsets: TopicPartitionOffset[]): Promise<void> {
    const txn = await this.transaction();
    if (offsets.length > 0) {
      const topics = new Map<string, Array<{ partition: number; offset: string }>>();
      for (const o of offsets) {
        let list = topics.get(o.topic);
        if (!list) topics.set(o.topic, (list = []));
        list.push({ partition: o.partition, offset: String(o.offset) });
      }
      await txn.sendOffsets({ consumerGroupId: this.groupId, topics: [...topics].map(([topic, partitions]) => ({ topic, partitions })) });
    }
    this.txn = null;
    await txn.commit();
  }

  async abort(): Promise<void> {
    const txn = this.txn;
    this.txn = null;
    if (txn && txn.isActive()) await txn.abort();
  }

  async close(): Promise<void> {
    await this.producer.disconnect().catch(() => undefined);
  }
}

export class AtLeastOnceTaskProducer implements TaskProducer {
  readonly guarantee = 'at_least_once' as const;

  constructor(
    private readonly producer: Producer,
    private readonly commitOffsets: (offsets: TopicPartitionOffset[]) => Promise<void>,
  ) {}

  async init(): Promise<void> {}

  async send(records: OutgoingRecord[]): Promise<SendResult> {
    if (records.length === 0) return new Map();
    return sendChunked(records, (topicMessages) => this.producer.sendBatch({ topicMessages, acks: -1 }));
  }

  async commit(offsets: TopicPartitionOffset[]): Promise<void> {
    if (offsets.length > 0) await this.commitOffsets(offsets);
  }

  async abort(): Promise<void> {}

  /** The producer is shared by the worker's tasks; the worker closes it. */
  async close(): Promise<void> {}
}

const FENCED_TYPES = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED', 'TRANSACTION_COORDINATOR_FENCED', 'INVALID_PRODUCER_ID_MAPPING']);

/** True when the error says another producer with our transactional id took over (we are a zombie). */
export function isFencedError(err: unknown): boolean {
  for (const e of errorChain(err)) if ((e.type && FENCED_TYPES.has(e.type)) || e.code === 90 || e.code === 47) return true;
  return false;
}
