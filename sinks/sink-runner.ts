/**
 * Feeds one sink from the output topics, exactly once.
 * Responsible for:
 * - its own consumer group (group id = sink name), read_committed, no offsets committed to Kafka: on every
 *   assignment it pauses the partitions, reads their next offsets from the database, seeks there and resumes;
 * - decoding each record with its topic's serde and handing it to the sink; a record that cannot be decoded or
 *   converted stalls its partition, named in `status()` (the output topics are weir's own: nothing is skipped);
 * - flushing every `batchSize` records or `flushIntervalMs`, one flush at a time, through the retry helper and the
 *   circuit breaker; while a flush fails the runner is stalled and consumption is paused (nothing piles up);
 * - dropping a batch the database refuses as stale (offset conflict) and re-reading the offsets;
 * - stopping gracefully: final flush, then leave the group.
 * Offsets follow the fetch exactly: `position` is the next offset to take and is also what kafkajs resolves, so
 * offsets of control markers and aborted records are passed over and stored like any other.
 */
import { Kafka, logLevel as KafkaLogLevel, type Admin, type Consumer, type EachBatchPayload, type KafkaConfig } from 'kafkajs';
import { ConfigError, isBrokerOutage, WeirError } from '../runtime/errors.js';
import type { Serde } from '../runtime/serde.js';
import { CircuitBreaker, type BreakerState } from './circuit-breaker.js';
import { BreakerOpenError, OffsetConflictError, PoisonRecordError, RetryAbortedError } from './errors.js';
import { createRetry, type RetryOptions } from './retry.js';
import { tpKey, type OffsetAdvance, type Sink, type TopicPartition } from './sink.js';

export type SinkRunnerState = 'starting' | 'running' | 'stalled' | 'stopped';

export interface SinkRunnerConfig {
  sink: Sink;
  brokers: string | string[];
  /** Kafka over TLS / SASL, as kafkajs takes them */
  ssl?: KafkaConfig['ssl'];
  sasl?: KafkaConfig['sasl'];
  /** the value serde of each topic read (keys are UTF-8 strings) */
  topics: Record<string, Serde<unknown>>;
  /**
   * Topics whose tombstones (null values) are records for the sink: they reach it with `value: null` (e.g. a
   * store's changelog, where a tombstone is a delete). On any other topic a tombstone stalls its partition.
   */
  tombstoneTopics?: readonly string[];
  /** records per flush, at most; consumption pauses while this many wait (a flush in progress or failing); default 1000 */
  batchSize?: number;
  /** flush pending records (or advanced offsets) at least this often; default 250 ms */
  flushIntervalMs?: number;
  /** backoff of a failing database call; retries are endless (the sink stalls, it never drops) */
  retry?: Partial<Pick<RetryOptions, 'initialRetryTime' | 'maxRetryTime' | 'factor' | 'multiplier'>>;
  breaker?: { failureThreshold?: number; coolDownMs?: number };
  /** how long `stop()` waits for the final flush before leaving without it; default 15 s */
  stopTimeoutMs?: number;
  sessionTimeoutMs?: number;
  clientId?: string;
  log?: (level: 'debug' | 'info' | 'warn' | 'error', msg: string, extra?: object) => void;
}

export interface PartitionStatus {
  topic: string;
  partition: number;
  /** the next offset stored in the database (null: none yet) */
  committed: string | null;
  /** the next offset to take from Kafka (pending records lie between committed and position) */
  position: string | null;
  highWatermark: string | null;
  /** records of the log not yet in the database: highWatermark − committed */
  lag: number | null;
  /** why this partition does not advance */
  stalled: string | null;
}

export interface SinkRunnerStatus {
  sink: string;
  state: SinkRunnerState;
  breaker: BreakerState;
  partitions: PartitionStatus[];
  lastError: { name: string; message: string; at: string } | null;
  rowsWritten: number;
  recordsWritten: number;
  batches: number;
  pendingRecords: number;
}

export interface SinkRunnerEvents {
  flush: { records: number; rows: number; partitions: number; durationMs: number; alreadyApplied: boolean };
  breaker: { from: BreakerState; to: BreakerState; error?: string };
  error: { stage: 'init' | 'assign' | 'flush' | 'decode' | 'consumer'; error: Error; willRetry: boolean };
  state: { from: SinkRunnerState; to: SinkRunnerState };
}

type Lifecycle = 'created' | 'starting' | 'started' | 'stopping' | 'stopped';

interface PartitionState {
  topic: string;
  partition: number;
  phase: 'assigning' | 'ready' | 'poisoned';
  committed: bigint | null;
  position: bigint | null;
  highWatermark: bigint | null;
  /** a retriable decode failure (e.g. the registry is away): fetch again after this time */
  backoffUntil: number;
  stalled: string | null;
  /** bumped whenever the partition is positioned anew: a batch being taken from before that stops */
  epoch: number;
}

const EVENTS: ReadonlyArray<keyof SinkRunnerEvents> = ['flush', 'breaker', 'error', 'state'];

export class SinkRunner {
  readonly name: string;
  private readonly sink: Sink;
  private readonly cfg: Required<Omit<SinkRunnerConfig, 'sink' | 'retry' | 'breaker' | 'log' | 'clientId' | 'tombstoneTopics' | 'ssl' | 'sasl'>> & {
    tombstoneTopics: ReadonlySet<string>;
    log: NonNullable<SinkRunnerConfig['log']>;
  };
  private readonly breaker: CircuitBreaker;
  private readonly listeners = new Map<keyof SinkRunnerEvents, Set<(e: never) => void>>();
  private readonly abort = new AbortController();
  private readonly retry: ReturnType<typeof createRetry>;
  private kafka: Kafka;
  private consumer: Consumer | null = null;
  private admin: Admin | null = null;
  private lifecycle: Lifecycle = 'created';
  private reported: SinkRunnerState = 'starting';
  private partitions = new Map<string, PartitionState>();
  private paused = new Set<string>();
  private generation = 0;
  private everAssigned = false;
  /** serialises flushes and (re)assignments: they never interleave */
  private queue: Promise<unknown> = Promise.resolve();
  private flushing = false;
  private failingSince: number | null = null;
  private fatal: Error | null = null;
  private lastError: SinkRunnerStatus['lastError'] = null;
  private lastFlushAt = Date.now();
  private timer: NodeJS.Timeout | null = null;
  private stopping: Promise<void> | null = null;
  private rowsWritten = 0;
  private recordsWritten = 0;
  private batches = 0;

  constructor(config: SinkRunnerConfig) {
    this.sink = config.sink;
    this.name = config.sink.name;
    if (!/^[A-Za-z0-9._-]+$/.test(this.name)) throw new ConfigError(`sink name '${this.name}' must use only letters, digits, '.', '_' and '-'`);
    const topics = Object.keys(config.topics);
    if (topics.length === 0) throw new ConfigError('a sink runner needs at least one topic');
    const batchSize = config.batchSize ?? 1000;
    this.cfg = {
      brokers: config.brokers,
      topics: config.topics,
      batchSize,
      flushIntervalMs: config.flushIntervalMs ?? 250,
      stopTimeoutMs: config.stopTimeoutMs ?? 15_000,
      sessionTimeoutMs: config.sessionTimeoutMs ?? 10_000,
      log: config.log ?? (() => undefined),
      tombstoneTopics: new Set(config.tombstoneTopics ?? []),
    };
    const unread = [...this.cfg.tombstoneTopics].filter((t) => !topics.includes(t));
    if (unread.length > 0) throw new ConfigError(`tombstoneTopics ${unread.join(', ')} are not among the topics the sink reads`);
    this.breaker = new CircuitBreaker({
      failureThreshold: config.breaker?.failureThreshold ?? 3,
      coolDownMs: config.breaker?.coolDownMs ?? 2000,
      onStateChange: ({ from, to, error }) => {
        this.cfg.log(to === 'open' ? 'warn' : 'info', `circuit breaker ${from} → ${to}`, { sink: this.name });
        this.emit('breaker', { from, to, error: error instanceof Error ? error.message : undefined });
        this.applyPauses();
        this.refreshState();
      },
    });
    this.retry = createRetry({
      retries: Infinity,
      initialRetryTime: config.retry?.initialRetryTime ?? 200,
      maxRetryTime: config.retry?.maxRetryTime ?? 5000,
      factor: config.retry?.factor ?? 0.2,
      multiplier: config.retry?.multiplier ?? 2,
      isRetriable: (err) => err instanceof WeirError && err.retriable,
      signal: this.abort.signal,
    });
    const brokers = (Array.isArray(config.brokers) ? config.brokers : config.brokers.split(',')).map((b) => b.trim()).filter(Boolean);
    if (brokers.length === 0) throw new ConfigError('brokers is empty; give host:port of at least one Kafka broker');
    this.kafka = new Kafka({
      clientId: config.clientId ?? `weir-sink-${this.name}`,
      brokers,
      ...(config.ssl ? { ssl: config.ssl } : {}),
      ...(config.sasl ? { sasl: config.sasl } : {}),
      logLevel: KafkaLogLevel.WARN,
      retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 5000 },
      logCreator: () => ({ level, log }) => {
        const { message, ...extra } = log as { message: string };
        this.cfg.log(level <= KafkaLogLevel.ERROR ? 'error' : 'warn', `kafkajs: ${message}`, extra);
      },
    });
  }

  /** Subscribe to 'flush' | 'breaker' | 'error' | 'state'; returns the unsubscribe function. */
  on<K extends keyof SinkRunnerEvents>(event: K, listener: (e: SinkRunnerEvents[K]) => void): () => void {
    if (!EVENTS.includes(event)) throw new ConfigError(`unknown sink runner event '${String(event)}'; known: ${EVENTS.join(', ')}`);
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    const l = listener as (e: never) => void;
    set.add(l);
    return () => void set!.delete(l);
  }

  status(): SinkRunnerStatus {
    return {
      sink: this.name,
      state: this.computeState(),
      breaker: this.breaker.state,
      partitions: [...this.partitions.values()]
        .sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1))
        .map((p) => ({
          topic: p.topic,
          partition: p.partition,
          committed: p.committed?.toString() ?? null,
          position: p.position?.toString() ?? null,
          highWatermark: p.highWatermark?.toString() ?? null,
          lag: p.highWatermark === null ? null : Number(p.highWatermark - (p.committed ?? 0n)),
          stalled: p.stalled,
        })),
      lastError: this.lastError,
      rowsWritten: this.rowsWritten,
      recordsWritten: this.recordsWritten,
      batches: this.batches,
      pendingRecords: this.sink.pendingRecords,
    };
  }

  /** Connect the database (retrying while it is away) and join the group. */
  async start(): Promise<void> {
    if (this.lifecycle !== 'created') throw new ConfigError(`sink runner '${this.name}' was already started`);
    this.lifecycle = 'starting';
    try {
      await this.guarded('init', () => this.sink.init());
      this.assertStarting();
      this.admin = this.kafka.admin();
      await this.admin.connect();
      // started before the consumer runs: its first GROUP_JOIN comes inside run() and positions only a started runner
      await this.runConsumer(() => {
        this.assertStarting();
        this.lifecycle = 'started';
        this.timer = setInterval(() => {
          this.applyPauses();
          this.maybeFlush();
        }, Math.max(20, Math.floor(this.cfg.flushIntervalMs / 2)));
      });
    } catch (err) {
      // failed or stopped while starting: close what was opened (stop() may have run before it existed)
      if (this.lifecycle === 'starting') this.lifecycle = 'stopping';
      if (this.timer) clearInterval(this.timer);
      await this.consumer?.disconnect().catch(() => undefined);
      await this.admin?.disconnect().catch(() => undefined);
      if (!this.stopping) {
        await this.sink.destroy().catch(() => undefined);
        this.lifecycle = 'stopped';
        this.refreshState();
      }
      throw err;
    }
  }

  /**
   * A consumer in the sink's group, subscribed and running. kafkajs gives up on some errors of a broker outage (e.g.
   * "Failed to find group coordinator" while the broker restarts) and says it will not restart: then a fresh consumer
   * is made after a pause, and again until one runs — the sink stalls through the outage, it does not stop. Its
   * pending records are dropped and the next assignment positions every partition from the database again.
   */
  private async runConsumer(beforeRun: () => void = () => undefined): Promise<void> {
    const consumer = this.kafka.consumer({
      groupId: this.name,
      readUncommitted: false,
      allowAutoTopicCreation: false,
      sessionTimeout: this.cfg.sessionTimeoutMs,
      heartbeatInterval: Math.max(500, Math.floor(this.cfg.sessionTimeoutMs / 5)),
      rebalanceTimeout: Math.max(30_000, this.cfg.sessionTimeoutMs),
      maxWaitTimeInMs: 100,
    });
    this.consumer = consumer;
    consumer.on(consumer.events.GROUP_JOIN, (e) => this.onGroupJoin(e.payload.memberAssignment));
    consumer.on(consumer.events.END_BATCH_PROCESS, (e) => this.onBatchProcessed(e.payload));
    consumer.on(consumer.events.CRASH, (e) => {
      const { error, restart } = e.payload as { error: Error; restart: boolean };
      if (this.lifecycle !== 'started' || consumer !== this.consumer) return;
      const outage = !restart && isBrokerOutage(error);
      this.noteError('consumer', error, restart || outage);
      if (outage) this.restartConsumer(consumer);
      else if (!restart) {
        this.fatal = new WeirError(`sink '${this.name}': the Kafka consumer stopped: ${error.message}`, { cause: error });
        this.refreshState();
      }
    });
    await consumer.connect();
    await consumer.subscribe({ topics: Object.keys(this.cfg.topics), fromBeginning: true });
    beforeRun();
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: (payload) => this.eachBatch(payload),
    });
  }

  private restartConsumer(old: Consumer): void {
    const again = async (): Promise<void> => {
      if (this.lifecycle !== 'started' || this.consumer !== old) return;
      this.consumer = null;
      await old.disconnect().catch(() => undefined);
      // nothing of the old membership is valid any more: the next GROUP_JOIN positions the partitions again
      this.generation++;
      this.partitions = new Map();
      this.paused = new Set();
      this.sink.discardPending();
      this.refreshState();
      if (this.lifecycle !== 'started') return;
      try {
        await this.runConsumer();
      } catch (err) {
        this.noteError('consumer', err, true);
        const failed = this.consumer;
        if (failed) {
          old = failed;
          setTimeout(() => void again(), 2000).unref();
        }
      }
    };
    this.cfg.log('warn', 'the Kafka consumer gave up during a broker outage; a new one starts in 2 s', { sink: this.name });
    setTimeout(() => void again(), 2000).unref();
  }

  /** `stop()` was called while starting: stop there (stop() closes what was opened so far). */
  private assertStarting(): void {
    if (this.lifecycle !== 'starting') throw new RetryAbortedError(new Error(`sink runner '${this.name}' was stopped while starting`));
  }

  /** Final flush (waiting at most `stopTimeoutMs`), leave the group, close the database. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const was = this.lifecycle;
      this.lifecycle = 'stopping';
      if (this.timer) clearInterval(this.timer);
      this.applyPauses();
      const giveUp = setTimeout(() => this.abort.abort(new Error('stop timeout')), this.cfg.stopTimeoutMs);
      try {
        if (was === 'started' && !this.fatal) await this.exclusive(() => this.flushOnce());
      } catch (err) {
        this.cfg.log('warn', `final flush failed; the next owner reads these records again: ${(err as Error).message}`, { sink: this.name });
      } finally {
        clearTimeout(giveUp);
        this.abort.abort(new Error('stopped'));
      }
      await this.consumer?.disconnect().catch(() => undefined);
      await this.admin?.disconnect().catch(() => undefined);
      await this.sink.destroy().catch(() => undefined);
      this.lifecycle = 'stopped';
      this.refreshState();
    })();
    return this.stopping;
  }

  // ---- assignment ------------------------------------------------------------------------------------------

  private onGroupJoin(assignment: Record<string, number[]>): void {
    // Synchronous, before the first fetch of this generation: nothing is read until the partitions are positioned.
    const gen = ++this.generation;
    const tps: TopicPartition[] = Object.entries(assignment).flatMap(([topic, parts]) => parts.map((partition) => ({ topic, partition })));
    this.partitions = new Map(
      tps.map((tp) => [
        tpKey(tp.topic, tp.partition),
        { ...tp, phase: 'assigning' as const, committed: null, position: null, highWatermark: null, backoffUntil: 0, stalled: 'assigning', epoch: 0 },
      ]),
    );
    // Always by partition: a topic-wide pause followed by a partition's pause would resume the others (kafkajs).
    this.paused = new Set(this.partitions.keys());
    if (tps.length > 0) this.consumer?.pause(group(tps));
    // records taken before the rebalance are read again from the database offsets
    this.sink.discardPending();
    this.cfg.log('info', `assigned ${tps.map((t) => `${t.topic}/${t.partition}`).join(', ') || 'nothing'}`, { sink: this.name, generation: gen });
    this.reposition(gen);
  }

  /** Position the partitions of generation `gen` (under the queue), trying again until it works or is superseded. */
  private reposition(gen: number): void {
    void this.exclusive(() => this.position(gen)).catch((err) => {
      if (err instanceof RetryAbortedError || gen !== this.generation || this.lifecycle !== 'started') return;
      this.noteError('assign', err, true);
      setTimeout(() => this.reposition(gen), 1000).unref();
    });
  }

  /** Read the database offsets of the current assignment and seek there (under the queue). */
  private async position(gen: number): Promise<void> {
    if (gen !== this.generation || this.lifecycle !== 'started') return;
    const states = [...this.partitions.values()];
    const tps = states.map(({ topic, partition }) => ({ topic, partition }));
    const stored = tps.length > 0 ? await this.guarded('assign', () => this.sink.committedOffsets(tps)) : new Map<string, bigint | null>();
    const marks = new Map<string, { low: bigint; high: bigint }>();
    for (const topic of new Set(tps.map((t) => t.topic))) {
      const offsets = await this.retry(() => this.admin!.fetchTopicOffsets(topic));
      for (const o of offsets) marks.set(tpKey(topic, o.partition), { low: BigInt(o.low), high: BigInt(o.high) });
    }
    if (gen !== this.generation || this.lifecycle !== 'started') return;
    for (const st of states) {
      const key = tpKey(st.topic, st.partition);
      const committed = stored.get(key) ?? null;
      const mark = marks.get(key) ?? { low: 0n, high: 0n };
      st.committed = committed;
      st.highWatermark = mark.high;
      if (committed !== null && (committed < mark.low || committed > mark.high)) {
        const why =
          committed < mark.low
            ? `the database is at offset ${committed} but the log now starts at ${mark.low}: records were deleted before this sink wrote them`
            : `the database is at offset ${committed} but the log ends at ${mark.high}: was the topic recreated?`;
        this.poison(st, new PoisonRecordError(st.topic, st.partition, committed, why));
        continue;
      }
      st.position = committed ?? mark.low;
      st.phase = 'ready';
      st.epoch++;
      st.stalled = null;
      this.consumer!.seek({ topic: st.topic, partition: st.partition, offset: st.position.toString() });
    }
    this.everAssigned = true;
    this.applyPauses();
    this.refreshState();
  }

  // ---- consuming -------------------------------------------------------------------------------------------

  private async eachBatch({ batch, resolveOffset, heartbeat, isStale }: EachBatchPayload): Promise<void> {
    const st = this.partitions.get(tpKey(batch.topic, batch.partition));
    if (!st || st.phase !== 'ready' || st.position === null || this.lifecycle !== 'started' || isStale()) return;
    const serde = this.cfg.topics[batch.topic]!;
    const ctx = { topic: batch.topic };
    const epoch = st.epoch;
    const current = () => st.phase === 'ready' && st.epoch === epoch && this.lifecycle === 'started';
    let all = true;
    for (const m of batch.messages) {
      const offset = BigInt(m.offset);
      if (offset < st.position!) continue; // a fetch from before the last seek
      if (this.sink.pendingRecords >= this.cfg.batchSize) {
        // the batch is full: the rest of this fetch is fetched again once the flush has taken the batch
        all = false;
        break;
      }
      try {
        if (m.value === null && !this.cfg.tombstoneTopics.has(batch.topic)) throw new Error('the value is null (a tombstone); output topics carry no deletes');
        const headers: Record<string, Buffer | undefined> = {};
        for (const [k, v] of Object.entries(m.headers ?? {})) headers[k] = typeof v === 'string' ? Buffer.from(v) : Array.isArray(v) ? toBuffer(v[0]) : v;
        const value = m.value === null ? null : await serde.deserialize(m.value, { ...ctx, headers });
        // the partition was positioned anew (offset conflict) while this record was decoded: leave the batch
        if (!current()) return;
        this.sink.add({
          topic: batch.topic,
          partition: batch.partition,
          offset,
          key: m.key === null ? null : m.key.toString('utf8'),
          value,
          timestamp: Number(m.timestamp),
          headers,
        });
      } catch (err) {
        all = false;
        if (err instanceof WeirError && err.retriable) {
          // e.g. the schema registry is away: read this record again a little later
          st.backoffUntil = Date.now() + 1000;
          this.noteError('decode', err, true);
        } else {
          this.poison(st, new PoisonRecordError(batch.topic, batch.partition, offset, 'it cannot be decoded or does not fit its table', err));
        }
        break;
      }
      st.position = offset + 1n;
    }
    if (!current() && (st.phase as PartitionState['phase']) !== 'poisoned') return;
    // past the control markers and aborted records at the end of the fetch, as kafkajs does
    if (all) st.position = maxBig(st.position!, BigInt(batch.lastOffset()) + 1n);
    if (st.position! > 0n) resolveOffset((st.position! - 1n).toString());
    st.highWatermark = BigInt(batch.highWatermark);
    this.applyPauses();
    this.maybeFlush();
    await heartbeat().catch(() => undefined);
  }

  /** kafkajs handles a fetch of only control markers or aborted records itself; move past it too. */
  private onBatchProcessed(p: { topic: string; partition: number; batchSize: number; lastOffset: string; highWatermark: string }): void {
    const st = this.partitions.get(tpKey(p.topic, p.partition));
    if (!st) return;
    st.highWatermark = BigInt(p.highWatermark);
    if (p.batchSize > 0 || st.phase !== 'ready' || st.position === null || this.lifecycle !== 'started') return;
    st.position = maxBig(st.position, BigInt(p.lastOffset) + 1n);
  }

  private poison(st: PartitionState, err: PoisonRecordError): void {
    st.phase = 'poisoned';
    st.stalled = err.message;
    this.noteError('decode', err, false);
    this.applyPauses();
    this.refreshState();
  }

  // ---- flushing --------------------------------------------------------------------------------------------

  private maybeFlush(): void {
    if (this.flushing || this.lifecycle !== 'started' || this.fatal) return;
    const full = this.sink.pendingRecords >= this.cfg.batchSize;
    const due = Date.now() - this.lastFlushAt >= this.cfg.flushIntervalMs && (this.sink.pendingRecords > 0 || this.advanced().length > 0);
    if (!full && !due) return;
    this.flushing = true;
    void this.exclusive(() => this.flushOnce())
      .catch((err) => {
        if (!(err instanceof RetryAbortedError)) this.noteError('flush', err, false);
      })
      .finally(() => {
        this.flushing = false;
        this.applyPauses();
        this.refreshState();
        if (this.sink.pendingRecords >= this.cfg.batchSize) setImmediate(() => this.maybeFlush());
      });
  }

  private advanced(): OffsetAdvance[] {
    const out: OffsetAdvance[] = [];
    for (const st of this.partitions.values()) {
      if (st.position !== null && st.position !== st.committed) {
        out.push({ topic: st.topic, partition: st.partition, expected: st.committed, next: st.position });
      }
    }
    return out;
  }

  /**
   * One flush (under the queue): 1. take the pending batch and the offsets it reaches, 2. write both atomically,
   * retrying behind the breaker until the database takes them, 3. record the new committed offsets.
   */
  private async flushOnce(): Promise<void> {
    const gen = this.generation;
    // 1.
    const batch = this.sink.takeBatch();
    const offsets = this.advanced();
    if (batch.records === 0 && offsets.length === 0) return;
    this.applyPauses(); // the next batch fills while this one is written
    const started = Date.now();
    try {
      // 2.
      const result = await this.guarded('flush', () => this.sink.flush(batch, offsets));
      // 3.
      if (gen === this.generation) {
        for (const o of offsets) {
          const st = this.partitions.get(tpKey(o.topic, o.partition));
          if (st && st.committed === o.expected) st.committed = o.next;
        }
      }
      this.lastFlushAt = Date.now();
      this.rowsWritten += result.rows;
      this.recordsWritten += batch.records;
      this.batches++;
      this.emit('flush', {
        records: batch.records,
        rows: result.rows,
        partitions: offsets.length,
        durationMs: Date.now() - started,
        alreadyApplied: result.alreadyApplied,
      });
    } catch (err) {
      if (err instanceof OffsetConflictError) {
        // Another member wrote these partitions: our batch is stale. Re-read everything from the database.
        this.noteError('flush', err, true);
        this.sink.discardPending();
        for (const st of this.partitions.values()) if (st.phase === 'ready') Object.assign(st, { phase: 'assigning', stalled: 'assigning', epoch: st.epoch + 1 });
        this.applyPauses();
        const current = this.generation;
        await this.position(current).catch((e) => {
          if (!(e instanceof RetryAbortedError)) setTimeout(() => this.reposition(current), 1000).unref();
        });
        return;
      }
      if (err instanceof RetryAbortedError) throw err;
      this.fatal = err instanceof Error ? err : new Error(String(err));
      this.noteError('flush', this.fatal, false);
      this.cfg.log('error', `sink stalled: ${this.fatal.message}`, { sink: this.name });
      throw err;
    } finally {
      this.applyPauses();
      this.refreshState();
    }
  }

  /** A database call: retried with backoff (endlessly, until stop) behind the circuit breaker. */
  private async guarded<T>(stage: 'init' | 'assign' | 'flush', fn: () => Promise<T>): Promise<T> {
    const isOutage = (err: unknown) => err instanceof WeirError && err.retriable;
    let failed = false;
    try {
      return await this.retry(async () => {
        try {
          return await this.breaker.call(fn, isOutage);
        } catch (err) {
          if (isOutage(err)) {
            failed = true;
            this.failingSince ??= Date.now();
            // a refusal by the open breaker is not news: lastError keeps the failure that opened it
            if (!(err instanceof BreakerOpenError)) this.noteError(stage, err, true);
            this.applyPauses();
            this.refreshState();
          }
          throw err;
        }
      });
    } finally {
      if (failed || this.failingSince !== null) {
        this.failingSince = null;
        this.applyPauses();
        this.refreshState();
      }
    }
  }

  // ---- pausing and state -----------------------------------------------------------------------------------

  /** Pause what must not be read now, resume the rest. */
  private applyPauses(): void {
    const consumer = this.consumer;
    if (!consumer) return;
    const now = Date.now();
    const holdAll =
      this.lifecycle !== 'started' ||
      this.fatal !== null ||
      this.failingSince !== null ||
      this.breaker.state !== 'closed' ||
      this.sink.pendingRecords >= this.cfg.batchSize;
    const toPause: TopicPartition[] = [];
    const toResume: TopicPartition[] = [];
    for (const [key, st] of this.partitions) {
      const hold = holdAll || st.phase !== 'ready' || st.backoffUntil > now;
      if (hold && !this.paused.has(key)) {
        this.paused.add(key);
        toPause.push(st);
      } else if (!hold && this.paused.has(key)) {
        this.paused.delete(key);
        toResume.push(st);
      }
    }
    if (toPause.length > 0) consumer.pause(group(toPause));
    if (toResume.length > 0) consumer.resume(group(toResume));
  }

  private computeState(): SinkRunnerState {
    switch (this.lifecycle) {
      case 'created':
      case 'starting':
        return 'starting';
      case 'stopped':
        return 'stopped';
      case 'started':
      case 'stopping': {
        const stalled =
          this.fatal !== null ||
          this.failingSince !== null ||
          this.breaker.state !== 'closed' ||
          [...this.partitions.values()].some((p) => p.phase === 'poisoned');
        if (stalled) return 'stalled';
        return this.everAssigned ? 'running' : 'starting';
      }
      default: {
        const never: never = this.lifecycle;
        throw new Error(`unexpected lifecycle ${String(never)}`);
      }
    }
  }

  private refreshState(): void {
    const next = this.computeState();
    if (next === this.reported) return;
    const from = this.reported;
    this.reported = next;
    this.emit('state', { from, to: next });
  }

  private noteError(stage: SinkRunnerEvents['error']['stage'], err: unknown, willRetry: boolean): void {
    const error = err instanceof Error ? err : new Error(String(err));
    this.lastError = { name: error.name, message: error.message, at: new Date().toISOString() };
    this.cfg.log(willRetry ? 'warn' : 'error', `${stage}: ${error.message}`, { sink: this.name });
    this.emit('error', { stage, error, willRetry });
  }

  private emit<K extends keyof SinkRunnerEvents>(event: K, payload: SinkRunnerEvents[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const l of set) {
      try {
        (l as (e: SinkRunnerEvents[K]) => void)(payload);
      } catch (err) {
        this.cfg.log('error', `a '${event}' listener threw: ${(err as Error).message}`, { sink: this.name });
      }
    }
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

function group(tps: readonly TopicPartition[]): Array<{ topic: string; partitions: number[] }> {
  const byTopic = new Map<string, number[]>();
  for (const { topic, partition } of tps) {
    const list = byTopic.get(topic) ?? [];
    list.push(partition);
    byTopic.set(topic, list);
  }
  return [...byTopic].map(([topic, partitions]) => ({ topic, partitions }));
}

function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function toBuffer(v: Buffer | string | undefined): Buffer | undefined {
  return typeof v === 'string' ? Buffer.from(v) : v;
}

