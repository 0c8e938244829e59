import type { Topology, TopologyNode, SubTopology } from './topology.js';
import type { Processor, ProcessorContext, Record as WeirRecord, RecordMetadata, PunctuationType, Cancellable, Headers } from './processor.js';
import type { StoreManager } from '../state/store-manager.js';
import type { KeyValueStore } from '../state/store.js';
import type { LogReader, RestoreProgress } from '../state/changelog-reader.js';
import type { RecordCollector } from './record-collector.js';
import type { TaskProducer, TopicPartitionOffset } from './task-producer.js';
import type { RawMessage } from './partition-reader.js';
import { abortTransaction, commitCheckpoint } from './checkpoint.js';
import { ProcessingError, RecordRejectedError, TaskCorruptedError, WeirError } from './errors.js';

export type TaskState = 'CREATED' | 'RESTORING' | 'RUNNING' | 'CLOSED' | 'FAILED';

export type ErrorPolicy = 'fail' | 'dead-letter';

export interface TaskOptions {
  applicationId: string;
  id: string;
  subTopology: SubTopology;
  partition: number;
  topology: Topology;
  stores: StoreManager;
  collector: RecordCollector;
  producer: TaskProducer;
  deadLetterTopic: string;
  processingErrorPolicy: ErrorPolicy;
  deserializationErrorPolicy: ErrorPolicy;
  /** Flush outputs to Kafka mid-transaction beyond this many buffered bytes. */
  maxBufferedBytes: number;
  events: TaskEvents;
  now?: () => number;
}

/** What a task reports; the worker turns these into metrics and logs. */
export interface TaskEvents {
  deadLetter?(info: { taskId: string; stage: DeadLetterStage; topic: string; partition: number; offset: string; error: string }): void;
  processed?(info: { taskId: string; records: number }): void;
  committed?(info: CommitInfo): void;
  aborted?(info: { taskId: string; error: string }): void;
  /** A processor counted something (`context.count`), e.g. duplicates dropped. */
  counted?(info: { taskId: string; processor: string; name: string; n: number }): void;
  restoreProgress?(info: RestoreProgress & { taskId: string }): void;
}

export interface CommitInfo {
  taskId: string;
  durationMs: number;
  /** Input records the transaction covered. */
  records: number;
  /** Output (and dead-letter) records per topic. */
  outputs: Map<string, number>;
  /** Event timestamps of those outputs, for end-to-end latency. */
  timestamps: number[];
  committedAt: number;
}

export type DeadLetterStage = 'deserialization' | 'validation' | 'processing';

interface Punctuation {
  type: PunctuationType;
  interval: number;
  next: number;
  node: string;
  callback: (timestamp: number) => void | Promise<void>;
  cancelled: boolean;
}

interface NodeRuntime {
  node: TopologyNode;
  processor?: Processor;
}

/**
 * One task: a sub-topology applied to one partition of its co-partitioned input topics.
 * Responsible for:
 * - its lifecycle, CREATED → RESTORING → RUNNING → CLOSED (or FAILED), refusing calls in the wrong state;
 * - processing records in offset order per input partition, skipping any it already processed;
 * - stream time, and the punctuators scheduled on stream time and on wall-clock time;
 * - routing bad records to the dead-letter topic, and committing through the checkpoint.
 * All calls into one task are serialized by `exclusive`.
 */
export class Task {
  readonly id: string;
  readonly partition: number;
  private stateValue: TaskState = 'CREATED';
  private readonly nodes = new Map<string, NodeRuntime>();
  private readonly nextOffsets = new Map<string, number | null>();
  private readonly sources = new Map<string, Extract<TopologyNode, { kind: 'source' }>>();
  private readonly advanced = new Set<string>();
  private streamTime = -1;
  private current: RecordMetadata | undefined;
  private punctuations: Punctuation[] = [];
  private uncommitted = 0;
  private lastCommit = 0;
  private queue: Promise<unknown> = Promise.resolve();
  /** Forwards a node made and did not await, per node: drained when that node's own call returns. */
  private readonly inflight = new Map<string, Promise<void>[]>();
  private readonly now: () => number;

  constructor(private readonly opts: TaskOptions) {
    this.id = opts.id;
    this.partition = opts.partition;
    this.now = opts.now ?? Date.now;
    for (const topic of opts.subTopology.sourceTopics) {
      this.nextOffsets.set(topic, null);
      this.sources.set(topic, opts.topology.sourceNodeOfTopic(topic));
    }
  }

  get state(): TaskState {
    return this.stateValue;
  }

  get inputTopics(): readonly string[] {
    return this.opts.subTopology.sourceTopics;
  }

  get uncommittedRecords(): number {
    return this.uncommitted;
  }

  get msSinceCommit(): number {
    return this.now() - this.lastCommit;
  }

  get needsCommit(): boolean {
    return this.stateValue === 'RUNNING' && (this.uncommitted > 0 || this.advanced.size > 0 || this.opts.stores.dirty || this.opts.collector.size > 0);
  }

  /** Run `fn` after every earlier call into this task has finished. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private transition(to: TaskState, from: readonly TaskState[], doing: string): void {
    if (!from.includes(this.stateValue)) throw new WeirError(`Illegal state ${this.stateValue} while ${doing} task ${this.id}`);
    this.stateValue = to;
  }

  /** CREATED → RESTORING: register the producer (fencing zombies), open and restore the stores. */
  async restore(log: LogReader): Promise<void> {
    this.transition('RESTORING', ['CREATED'], 'restoring');
    await this.opts.producer.init();
    await this.opts.stores.open();
    await this.opts.stores.restore(log, (p) => this.opts.events.restoreProgress?.({ ...p, taskId: this.id }));
  }

  /** RESTORING → RUNNING: resume each input partition at its committed offset (null: from wherever the consumer starts). */
  async start(committed: ReadonlyMap<string, number | null>): Promise<void> {
    this.transition('RUNNING', ['RESTORING'], 'starting');
    for (const topic of this.inputTopics) this.nextOffsets.set(topic, committed.get(topic) ?? null);
    for (const name of this.opts.subTopology.nodes) {
      const node = this.opts.topology.nodes.get(name)!;
      const rt: NodeRuntime = { node };
      this.nodes.set(name, rt);
      if (node.kind === 'processor') rt.processor = node.supplier();
    }
    for (const [name, rt] of this.nodes) {
      if (rt.processor?.init) await rt.processor.init(this.contextFor(name));
    }
    this.lastCommit = this.now();
  }

  /** A store of this task, for inspection (the test driver, status). */
  store<K, V>(name: string): KeyValueStore<K, V> {
    return this.opts.stores.store<K, V>(name);
  }

  /** The next offset this task will process on `topic`, or null when it takes whatever comes first. */
  position(topic: string): number | null {
    return this.nextOffsets.get(topic) ?? null;
  }

  /** Process one fetched record; records below the task's position were processed already and are skipped. */
  async process(topic: string, partition: number, message: RawMessage): Promise<void> {
    if (this.stateValue !== 'RUNNING') throw new WeirError(`Illegal state ${this.stateValue} while processing task ${this.id}`);
    const offset = Number(message.offset);
    const next = this.nextOffsets.get(topic);
    if (next === undefined) throw new WeirError(`task ${this.id} does not read topic '${topic}'`);
    if (next !== null && offset < next) return;
    const meta: RecordMetadata = { topic, partition, offset: message.offset };
    const source = this.sources.get(topic)!;
    const headers = normalizeHeaders(message.headers);
    const timestamp = Number(message.timestamp);

    let key: unknown;
    let value: unknown;
    try {
      const ctx = { topic, headers };
      key = message.key === null ? null : source.options.keySerde.deserialize(message.key, ctx);
      if (key instanceof Promise) key = await key;
      value = message.value === null ? null : source.options.valueSerde.deserialize(message.value, ctx);
      if (value instanceof Promise) value = await value;
    } catch (err) {
      // A passing outage (e.g. the schema registry is down) is not the record's fault: retry it later.
      if (err instanceof WeirError && err.retriable) throw err;
      await this.handleBadRecord('deserialization', message, meta, err, source.name);
      this.markProcessed(topic, offset);
      return;
    }
    if (source.options.validate) {
      const problem = safeValidate(source.options.validate, key, value);
      if (problem) {
        await this.handleBadRecord('validation', message, meta, new Error(problem), source.name);
        this.markProcessed(topic, offset);
        return;
      }
    }

    if (timestamp > this.streamTime) this.streamTime = timestamp;
    this.current = meta;
    try {
      await this.runForward(source.name, { key, value, timestamp, headers });
    } catch (err) {
      if (err instanceof TaskCorruptedError) {
        this.discarded();
        throw err;
      }
      const perr = err instanceof ProcessingError ? err : new ProcessingError(source.name, this.id, meta, err);
      if (perr.cause instanceof RecordRejectedError) {
        await this.handleBadRecord('validation', message, meta, perr.cause, perr.processor);
        this.markProcessed(topic, offset);
        return;
      }
      if (this.opts.processingErrorPolicy === 'fail') {
        this.stateValue = 'FAILED';
        throw perr;
      }
      await this.handleBadRecord('processing', message, meta, perr, perr.processor);
    } finally {
      this.current = undefined;
    }
    this.markProcessed(topic, offset);
    await this.punctuateStreamTime();
    if (this.opts.collector.bufferedBytes > this.opts.maxBufferedBytes) await this.flushOutputs();
  }

  private markProcessed(topic: string, offset: number): void {
    this.nextOffsets.set(topic, offset + 1);
    this.advanced.add(topic);
    this.uncommitted++;
  }

  /** Send the buffered outputs inside the open transaction; a failed send aborts it (like a failed commit). */
  private async flushOutputs(): Promise<void> {
    try {
      await this.opts.producer.send(this.opts.collector.drain());
    } catch (err) {
      const aborted = await abortTransaction({ taskId: this.id, stores: this.opts.stores, collector: this.opts.collector, producer: this.opts.producer }, 'sending outputs', err);
      this.discarded();
      throw aborted;
    }
  }

  /**
   * The uncommitted work was thrown away (the transaction aborted, the store buffers dropped): leave RUNNING at once,
   * so that nothing queued behind on `exclusive` — a commit, a batch — commits input offsets past the lost records
   * or processes on top of the lost state. The task manager closes this instance and starts a fresh one from the
   * last commit.
   */
  private discarded(): void {
    if (this.stateValue === 'RUNNING') this.stateValue = 'FAILED';
  }

  private async handleBadRecord(stage: DeadLetterStage, message: RawMessage, meta: RecordMetadata, err: unknown, node: string): Promise<void> {
    const reason = err instanceof Error ? err.message : String(err);
    // The deserialization policy covers every record that is bad in itself: undecodable, or rejected by validation.
    if (stage !== 'processing' && this.opts.deserializationErrorPolicy === 'fail') {
      this.stateValue = 'FAILED';
      throw new ProcessingError(node, this.id, meta, err);
    }
    const headers: Record<string, Buffer | string> = {};
    for (const [k, v] of Object.entries(normalizeHeaders(message.headers))) if (v) headers[k] = v;
    Object.assign(headers, {
      'weir.dlq.stage': stage,
      'weir.dlq.error': reason,
      'weir.dlq.error.class': err instanceof ProcessingError && err.cause instanceof Error ? err.cause.name : err instanceof Error ? err.name : 'Error',
      'weir.dlq.node': node,
      'weir.dlq.task': this.id,
      'weir.dlq.topic': meta.topic,
      'weir.dlq.partition': String(meta.partition),
      'weir.dlq.offset': meta.offset,
    });
    this.opts.collector.send(this.opts.deadLetterTopic, message.key, message.value, Number(message.timestamp), headers);
    this.opts.events.deadLetter?.({ taskId: this.id, stage, topic: meta.topic, partition: meta.partition, offset: meta.offset, error: reason });
  }

  /** Deliver a record to every child of `from` (or the one named), depth first. */
  private async runForward(from: string, record: WeirRecord<unknown, unknown>, childName?: string): Promise<void> {
    const rt = this.nodes.get(from)!;
    if (rt.node.kind === 'sink') return;
    const children = rt.node.children;
    if (childName !== undefined && !children.includes(childName)) {
      throw new WeirError(`'${from}' has no child named '${childName}' (children: ${children.join(', ') || 'none'})`);
    }
    for (const child of childName !== undefined ? [childName] : children) await this.deliver(child, record);
  }

  private async deliver(name: string, record: WeirRecord<unknown, unknown>): Promise<void> {
    const rt = this.nodes.get(name)!;
    const node = rt.node;
    if (node.kind === 'sink') {
      const ctx = { topic: node.options.topic, headers: record.headers };
      let key: Buffer | null;
      let value: Buffer | null;
      try {
        // Synchronous serdes are not awaited: an await costs a tick per record.
        const k = record.key === null || record.key === undefined ? null : node.options.keySerde.serialize(record.key, ctx);
        key = k instanceof Promise ? await k : k;
        const v = record.value === null || record.value === undefined ? null : node.options.valueSerde.serialize(record.value, ctx);
        value = v instanceof Promise ? await v : v;
      } catch (err) {
        // A passing outage (the registry is down): the stores already changed for this record, so the task
        // must go back to its last commit and process the record again later.
        if (err instanceof WeirError && err.retriable) {
          throw new TaskCorruptedError(this.id, `writing to '${node.options.topic}' failed for now (${err.message})`, err);
        }
        throw err;
      }
      this.opts.collector.send(node.options.topic, key, value, record.timestamp, headersForKafka(record.headers));
      return;
    }
    if (node.kind !== 'processor') return;
    try {
      const r = rt.processor!.process(record);
      if (r) await r;
      await this.drainForwards(name);
    } catch (err) {
      this.inflight.delete(name);
      if (err instanceof ProcessingError || err instanceof TaskCorruptedError) throw err;
      throw new ProcessingError(name, this.id, this.current ?? { topic: '(punctuation)', partition: this.partition, offset: '-1' }, err);
    }
  }

  /** Await the forwards `node` started (a processor may forward without awaiting; its children still finish first). */
  private async drainForwards(node: string): Promise<void> {
    const pending = this.inflight.get(node);
    if (!pending) return;
    while (pending.length > 0) await pending.shift();
  }

  private contextFor(nodeName: string): ProcessorContext {
    const node = this.opts.topology.nodes.get(nodeName)!;
    const connected = node.kind === 'processor' ? node.stores : [];
    return {
      applicationId: this.opts.applicationId,
      taskId: this.id,
      partition: this.partition,
      forward: (record, childName) => {
        const p = this.runForward(nodeName, record as WeirRecord<unknown, unknown>, childName);
        let pending = this.inflight.get(nodeName);
        if (!pending) this.inflight.set(nodeName, (pending = []));
        pending.push(p);
        return p;
      },
      getStore: <K, V>(name: string) => {
        if (!connected.includes(name)) {
          throw new WeirError(`processor '${nodeName}' is not connected to state store '${name}' (connected: ${connected.join(', ') || 'none'})`);
        }
        return this.opts.stores.store<K, V>(name);
      },
      recordMetadata: () => this.current,
      count: (name, n = 1) => this.opts.events.counted?.({ taskId: this.id, processor: nodeName, name, n }),
      currentStreamTime: () => this.streamTime,
      currentSystemTime: () => this.now(),
      schedule: (intervalMs, type, callback): Cancellable => {
        if (!(intervalMs > 0)) throw new WeirError(`a punctuation interval must be positive, got ${intervalMs}`);
        const start = type === 'wall-clock' ? this.now() : Math.max(this.streamTime, 0);
        const p: Punctuation = { type, interval: intervalMs, next: start + intervalMs, node: nodeName, callback, cancelled: false };
        this.punctuations.push(p);
        return { cancel: () => { p.cancelled = true; this.punctuations = this.punctuations.filter((x) => x !== p); } };
      },
    };
  }

  private async punctuateStreamTime(): Promise<void> {
    for (const p of this.punctuations) {
      if (p.type !== 'stream-time' || p.cancelled || this.streamTime < p.next) continue;
      // Fire once per advance, then move the schedule past the current stream time.
      p.next += p.interval * (Math.floor((this.streamTime - p.next) / p.interval) + 1);
      await this.runPunctuation(p, this.streamTime);
    }
  }

  /** Fire the wall-clock punctuators that are due. */
  async punctuateWallClock(): Promise<void> {
    if (this.stateValue !== 'RUNNING') return;
    const now = this.now();
    for (const p of this.punctuations) {
      if (p.type !== 'wall-clock' || p.cancelled || now < p.next) continue;
      p.next += p.interval * (Math.floor((now - p.next) / p.interval) + 1);
      await this.runPunctuation(p, now);
    }
  }

  private async runPunctuation(p: Punctuation, timestamp: number): Promise<void> {
    try {
      const r = p.callback(timestamp);
      if (r) await r;
      await this.drainForwards(p.node);
    } catch (err) {
      this.inflight.delete(p.node);
      this.stateValue = 'FAILED';
      throw err instanceof ProcessingError
        ? err
        : new ProcessingError(p.node, this.id, { topic: `(${p.type} punctuation)`, partition: this.partition, offset: '-1' }, err);
    }
  }

  /** Commit everything processed so far (see checkpoint.ts for the steps). */
  async commit(): Promise<void> {
    if (this.stateValue !== 'RUNNING') throw new WeirError(`Illegal state ${this.stateValue} while committing task ${this.id}`);
    const started = this.now();
    const offsets: TopicPartitionOffset[] = [];
    for (const topic of this.advanced) offsets.push({ topic, partition: this.partition, offset: this.nextOffsets.get(topic)! });
    const records = this.uncommitted;
    const stats = this.opts.collector.takeStats();
    try {
      await commitCheckpoint({ taskId: this.id, stores: this.opts.stores, collector: this.opts.collector, producer: this.opts.producer, offsets });
    } catch (err) {
      this.discarded();
      this.opts.events.aborted?.({ taskId: this.id, error: (err as Error).message });
      throw err;
    }
    this.advanced.clear();
    this.uncommitted = 0;
    this.lastCommit = this.now();
    this.opts.events.committed?.({ taskId: this.id, durationMs: this.lastCommit - started, records, ...stats, committedAt: this.lastCommit });
  }

  /** Close after a final commit; a failed commit falls back to a dirty close and rethrows. */
  async closeClean(): Promise<void> {
    if (this.stateValue === 'RUNNING' && this.needsCommit) {
      try {
        await this.commit();
      } catch (err) {
        await this.closeDirty();
        throw err;
      }
    }
    await this.close();
  }

  /** Close without committing: uncommitted work is dropped; the next owner restores from the changelog. */
  async closeDirty(): Promise<void> {
    this.opts.collector.clear();
    if (this.stateValue !== 'CREATED' && this.stateValue !== 'CLOSED') this.opts.stores.abort();
    await this.opts.producer.abort().catch(() => undefined);
    await this.close();
  }

  private async close(): Promise<void> {
    if (this.stateValue === 'CLOSED') return;
    for (const rt of this.nodes.values()) {
      try {
        await rt.processor?.close?.();
      } catch {
        // A processor failing to close must not keep the stores open.
      }
    }
    this.nodes.clear();
    this.punctuations = [];
    this.stateValue = 'CLOSED';
    await this.opts.stores.close();
    await this.opts.producer.close();
  }
}

function normalizeHeaders(h: RawMessage['headers']): Headers {
  const out: Headers = {};
  if (!h) return out;
  for (const [k, v] of Object.entries(h)) {
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    out[k] = typeof last === 'string' ? Buffer.from(last) : last;
  }
  return out;
}

function headersForKafka(h: Headers | undefined): Record<string, Buffer> | undefined {
  if (!h) return undefined;
  const out: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = v;
  return out;
}

function safeValidate(validate: (key: unknown, value: unknown) => string | undefined | void, key: unknown, value: unknown): string | undefined {
  try {
    return validate(key, value) || undefined;
  } catch (err) {
    return `validation threw: ${(err as Error).message}`;
  }
}

