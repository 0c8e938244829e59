import type { Topology } from './topology.js';
import { Task } from './task.js';
import { taskIdOf } from './assignor.js';
import { RecordCollector, type OutgoingRecord } from './record-collector.js';
import { partitionForKey } from './partitioner.js';
import { tpKey, type SendResult, type TaskProducer, type TopicPartitionOffset } from './task-producer.js';
import type { RawMessage } from './partition-reader.js';
import type { LogReader } from '../state/changelog-reader.js';
import { StoreManager, changelogTopicName } from '../state/store-manager.js';
import type { StateDirectory } from '../state/state-directory.js';
import type { KeyValueStore } from '../state/store.js';
import type { Serde } from './serde.js';
import type { Headers } from './processor.js';
import { WeirError } from './errors.js';

interface LoggedRecord {
  offset: number;
  key: Buffer | null;
  value: Buffer | null;
  timestamp: number;
  headers?: Record<string, Buffer | string>;
}

/**
 * An in-memory stand-in for the broker's logs: committed records per topic-partition and committed offsets.
 * A driver's log can be handed to a new driver to test restoring from changelogs.
 */
export class InMemoryLog implements LogReader {
  readonly partitions = new Map<string, LoggedRecord[]>();
  readonly committedOffsets = new Map<string, number>();

  records(topic: string, partition: number): LoggedRecord[] {
    const k = tpKey(topic, partition);
    let list = this.partitions.get(k);
    if (!list) this.partitions.set(k, (list = []));
    return list;
  }

  append(topic: string, partition: number, r: Omit<LoggedRecord, 'offset'>): number {
    const list = this.records(topic, partition);
    const offset = list.length;
    list.push({ ...r, offset });
    return offset;
  }

  async read(
    topic: string,
    partition: number,
    fromOffset: number | null,
    onBatch: (messages: RawMessage[], nextOffset: number) => Promise<void> | void,
    opts: { untilOffset?: number } = {},
  ): Promise<number> {
    const list = this.records(topic, partition);
    const end = opts.untilOffset ?? list.length;
    const from = fromOffset ?? 0;
    if (from > list.length) throw new WeirError(`offset ${from} is out of range for ${topic}/${partition}`);
    const messages = list.slice(from, end).map(toRaw);
    if (messages.length > 0) await onBatch(messages, end);
    return Math.max(from, end);
  }
}

function toRaw(r: LoggedRecord): RawMessage {
  return { offset: String(r.offset), key: r.key, value: r.value, timestamp: String(r.timestamp), headers: r.headers };
}

/** Exactly-once against the in-memory log: sends become visible only when the transaction commits. */
class InMemoryTaskProducer implements TaskProducer {
  readonly guarantee = 'exactly_once' as const;
  private pending: OutgoingRecord[] = [];

  constructor(
    private readonly log: InMemoryLog,
    private readonly groupId: string,
  ) {}

  async init(): Promise<void> {}

  async send(records: OutgoingRecord[]): Promise<SendResult> {
    const result: SendResult = new Map();
    const counts = new Map<string, number>();
    for (const r of this.pending) counts.set(tpKey(r.topic, r.partition), (counts.get(tpKey(r.topic, r.partition)) ?? 0) + 1);
    for (const r of records) {
      const k = tpKey(r.topic, r.partition);
      counts.set(k, (counts.get(k) ?? 0) + 1);
      result.set(k, this.log.records(r.topic, r.partition).length + counts.get(k)!);
    }
    this.pending.push(...records);
    return result;
  }

  async commit(offsets: TopicPartitionOffset[]): Promise<void> {
    for (const r of this.pending) this.log.append(r.topic, r.partition, { key: r.key, value: r.value, timestamp: r.timestamp, headers: r.headers });
    this.pending = [];
    for (const o of offsets) this.log.committedOffsets.set(`${this.groupId}\u0000${tpKey(o.topic, o.partition)}`, o.offset);
  }

  async abort(): Promise<void> {
    this.pending = [];
  }

  async close(): Promise<void> {}
}

export interface TestDriverOptions {
  applicationId?: string;
  /** Partition count per topic (inputs, outputs); topics not named have `defaultPartitions` (1). */
  partitions?: Record<string, number>;
  defaultPartitions?: number;
  /** Where RocksDB stores live; without it every store is in memory. */
  stateDirectory?: StateDirectory;
  /** Continue from an earlier driver's log (to test restore). */
  log?: InMemoryLog;
  /** The wall clock the driver starts at (ms). */
  wallClockStart?: number;
  deadLetterTopic?: string;
  processingErrorPolicy?: 'fail' | 'dead-letter';
}

export interface TestOutputRecord<K, V> {
  key: K;
  value: V;
  timestamp: number;
  partition: number;
  headers: Headers;
}

/**
 * Runs a topology in-process without a broker, through the same Task, StoreManager and checkpoint the worker uses:
 * pipe records in, read committed outputs, advance wall-clock time, look into stores.
 * Each piped record is processed and committed before `pipeInput` returns.
 */
export class TopologyTestDriver {
  readonly log: InMemoryLog;
  private readonly tasks = new Map<string, Task>();
  private readonly readPositions = new Map<string, number>();
  private wallClock: number;
  private readonly applicationId: string;
  private started: Promise<void>;

  constructor(
    private readonly topology: Topology,
    private readonly opts: TestDriverOptions = {},
  ) {
    this.log = opts.log ?? new InMemoryLog();
    this.applicationId = opts.applicationId ?? 'test-app';
    this.wallClock = opts.wallClockStart ?? 0;
    this.started = this.startTasks();
  }

  private partitionsOf(topic: string): number {
    return this.opts.partitions?.[topic] ?? this.opts.defaultPartitions ?? 1;
  }

  private async startTasks(): Promise<void> {
    for (const sub of this.topology.subTopologies) {
      const counts = new Set(sub.sourceTopics.map((t) => this.partitionsOf(t)));
      if (counts.size > 1) throw new WeirError(`co-partitioned topics ${sub.sourceTopics.join(', ')} have different partition counts in the driver`);
      const n = this.partitionsOf(sub.sourceTopics[0]!);
      for (let p = 0; p < n; p++) {
        const id = taskIdOf(sub.id, p);
        const task = new Task({
          applicationId: this.applicationId,
          id,
          subTopology: sub,
          partition: p,
          topology: this.topology,
          stores: new StoreManager({
            applicationId: this.applicationId,
            taskId: id,
            partition: p,
            specs: sub.stores.map((s) => this.topology.stores.get(s)!),
            stateDir: this.opts.stateDirectory ?? null,
          }),
          collector: new RecordCollector((topic) => this.partitionsOf(topic)),
          producer: new InMemoryTaskProducer(this.log, this.applicationId),
          deadLetterTopic: this.opts.deadLetterTopic ?? `${this.applicationId}-dead-letters`,
          processingErrorPolicy: this.opts.processingErrorPolicy ?? 'fail',
          deserializationErrorPolicy: 'dead-letter',
          maxBufferedBytes: Number.MAX_SAFE_INTEGER,
          events: {},
          now: () => this.wallClock,
        });
        await task.restore(this.log);
        const committed = new Map<string, number | null>();
        for (const t of sub.sourceTopics) {
          committed.set(t, this.log.committedOffsets.get(`${this.applicationId}\u0000${tpKey(t, p)}`) ?? null);
        }
        await task.start(committed);
        this.tasks.set(id, task);
      }
    }
  }

  /** Serialize with the source's serdes, append to the input log and process (and commit) the record. */
  async pipeInput<K, V>(topic: string, key: K | null, value: V | null, opts: { timestamp?: number; headers?: Headers; partition?: number } = {}): Promise<void> {
    const source = this.topology.sourceNodeOfTopic(topic);
    const ctx = { topic, headers: opts.headers };
    const k = key === null ? null : await source.options.keySerde.serialize(key, ctx);
    const v = value === null ? null : await source.options.valueSerde.serialize(value, ctx);
    await this.pipeRaw(topic, k, v, opts);
  }

  /** Append raw bytes (e.g. a malformed record) to an input topic and process it. */
  async pipeRaw(topic: string, key: Buffer | null, value: Buffer | null, opts: { timestamp?: number; headers?: Headers; partition?: number } = {}): Promise<void> {
    await this.started;
    const n = this.partitionsOf(topic);
    const partition = opts.partition ?? (key === null ? 0 : partitionForKey(key, n));
    const headers: Record<string, Buffer> = {};
    for (const [hk, hv] of Object.entries(opts.headers ?? {})) if (hv) headers[hk] = hv;
    const offset = this.log.append(topic, partition, { key, value, timestamp: opts.timestamp ?? this.wallClock, headers });
    const sub = this.topology.subTopologyOfTopic(topic);
    const task = this.tasks.get(taskIdOf(sub.id, partition))!;
    const record = this.log.records(topic, partition)[offset]!;
    await task.exclusive(async () => {
      await task.process(topic, partition, toRaw(record));
      await task.commit();
    });
  }

  /** Move the wall clock forward, firing wall-clock punctuators that fall due, and commit. */
  async advanceWallClockTime(ms: number): Promise<void> {
    await this.started;
    this.wallClock += ms;
    for (const task of this.tasks.values()) {
      await task.exclusive(async () => {
        await task.punctuateWallClock();
        if (task.needsCommit) await task.commit();
      });
    }
  }

  /** Committed records of `topic` not read before, decoded with the given serdes. */
  async readOutput<K, V>(topic: string, keySerde: Serde<K>, valueSerde: Serde<V>): Promise<Array<TestOutputRecord<K, V>>> {
    await this.started;
    const out: Array<TestOutputRecord<K, V>> = [];
    for (let p = 0; p < this.partitionsOf(topic); p++) {
      const k = tpKey(topic, p);
      const list = this.log.records(topic, p);
      for (let i = this.readPositions.get(k) ?? 0; i < list.length; i++) {
        const r = list[i]!;
        const headers: Headers = {};
        for (const [hk, hv] of Object.entries(r.headers ?? {})) headers[hk] = typeof hv === 'string' ? Buffer.from(hv) : hv;
        const ctx = { topic, headers };
        out.push({
          key: (r.key === null ? null : await keySerde.deserialize(r.key, ctx)) as K,
          value: (r.value === null ? null : await valueSerde.deserialize(r.value, ctx)) as V,
          timestamp: r.timestamp,
          partition: p,
          headers,
        });
      }
      this.readPositions.set(k, list.length);
    }
    return out.sort((a, b) => a.timestamp - b.timestamp);
  }

  /** A task's store, to inspect state (reads see only committed data, as the driver commits every record). */
  async getStore<K, V>(name: string, partition = 0): Promise<KeyValueStore<K, V>> {
    await this.started;
    const sub = this.topology.subTopologies.find((s) => s.stores.includes(name));
    if (!sub) throw new WeirError(`no sub-topology has state store '${name}'`);
    const task = this.tasks.get(taskIdOf(sub.id, partition));
    if (!task) throw new WeirError(`no task for partition ${partition} of store '${name}'`);
    return task.store<K, V>(name);
  }

  changelogTopic(store: string): string {
    return changelogTopicName(this.applicationId, store);
  }

  async close(): Promise<void> {
    await this.started.catch(() => undefined);
    for (const task of this.tasks.values()) await task.exclusive(() => task.closeClean());
    this.tasks.clear();
  }
}
