import { EventEmitter } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { Kafka, logLevel as KafkaLogLevel, type Admin, type Consumer, type Producer, type KafkaConfig, type EachBatchPayload } from 'kafkajs';
import pino, { type Logger } from 'pino';
import type { Topology } from './topology.js';
import { Task, type CommitInfo, type ErrorPolicy, type TaskEvents } from './task.js';
import { TaskManager } from './task-manager.js';
import { taskAssigner, taskIdOf } from './assignor.js';
import { RecordCollector } from './record-collector.js';
import { AtLeastOnceTaskProducer, TransactionalTaskProducer, type TaskProducer } from './task-producer.js';
import { PartitionReader } from './partition-reader.js';
import { StoreManager, changelogTopicName } from '../state/store-manager.js';
import { StateDirectory } from '../state/state-directory.js';
import { BrokerUnreachableError, ConfigError, isBrokerOutage, TaskCorruptedError, TaskMigratedError, TopologyError, WeirError } from './errors.js';

export type ProcessingGuarantee = 'exactly_once' | 'at_least_once';

export interface WorkerConfig {
  /** Names the consumer group, the transactional ids, the changelog topics and the state directory. */
  applicationId: string;
  topology: Topology;
  brokers: string | string[];
  /** Root of local state; default `<tmp>/weir`. */
  stateDir?: string;
  guarantee?: ProcessingGuarantee;
  /** Commit each task at least this often (ms); default 100. */
  commitIntervalMs?: number;
  /** Commit a task once it processed this many records since its last commit; default 10000. */
  commitMaxRecords?: number;
  deadLetterTopic?: string;
  /** What a processor exception does: stop the worker ('fail', the default) or dead-letter the record and go on. */
  processingErrorPolicy?: ErrorPolicy;
  /** What an undecodable or invalid record does: dead-letter it and go on (default) or stop the worker. */
  deserializationErrorPolicy?: ErrorPolicy;
  /** How long to try reaching the broker at start before giving up; default 15000. */
  connectTimeoutMs?: number;
  sessionTimeoutMs?: number;
  transactionTimeoutMs?: number;
  /** Batches of different partitions processed at once; default 4. */
  partitionsConsumedConcurrently?: number;
  /** Replication factor for the topics the worker creates (changelogs, dead letters); default: the broker's. */
  replicationFactor?: number;
  clientId?: string;
  ssl?: KafkaConfig['ssl'];
  sasl?: KafkaConfig['sasl'];
  logger?: Logger;
}

export interface WorkerEventMap {
  ready: [];
  'task.running': [taskId: string];
  'task.committed': [info: CommitInfo];
  'task.aborted': [info: { taskId: string; error: string }];
  'processor.count': [info: { taskId: string; processor: string; name: string; n: number }];
  /** Records behind the end of the partition after a fetched batch. */
  lag: [info: { topic: string; partition: number; lag: number }];
  'task.restore': [info: { taskId: string; store: string; restored: number; next: number; end: number }];
  'dead-letter': [info: { taskId: string; stage: string; topic: string; partition: number; offset: string; error: string }];
  processed: [info: { taskId: string; records: number }];
  rebalance: [];
  error: [err: unknown];
}

/**
 * kafkajs messages that are expected in normal operation:
 * - retries are bounded on purpose (a failed transaction is aborted and its task restored, never half-applied);
 * - error responses that its own retry handles, e.g. CONCURRENT_TRANSACTIONS right after a commit or a fence.
 */
const KAFKAJS_NOISE = [
  /Limiting retries for the idempotent producer/,
  /^Response (InitProducerId|AddPartitionsToTxn|AddOffsetsToTxn)\(/,
  /^Response (Heartbeat|SyncGroup|JoinGroup|OffsetCommit)\(.*rebalanc/i,
  // CONCURRENT_TRANSACTIONS: the coordinator is still writing the last commit's markers; kafkajs retries it, and a
  // commit that still fails is the task's error, logged by weir
  /another concurrent operation on the same transaction/,
  // workers starting together create the same changelog topics; prepareTopics accepts TOPIC_ALREADY_EXISTS and throws
  // on anything else
  /^Response CreateTopics\(.*(already exists|Topic creation errors)/i,
];

type Resolved = Required<Omit<WorkerConfig, 'ssl' | 'sasl' | 'logger' | 'replicationFactor' | 'clientId'>> &
  Pick<WorkerConfig, 'ssl' | 'sasl' | 'replicationFactor'> & { clientId: string; brokerList: string[]; logger: Logger };

/**
 * One worker process's share of a topology: the loop.
 * Responsible for:
 * - checking the topics against the topology and creating changelog and dead-letter topics;
 * - joining the application's consumer group and feeding fetched batches to the tasks;
 * - committing on the interval and punctuating on wall-clock time;
 * - rejoining as a fresh member after it was fenced, and stopping cleanly (commit, leave the group).
 */
export class Worker {
  private readonly cfg: Resolved;
  private readonly emitter = new EventEmitter();
  private kafka!: Kafka;
  private admin: Admin | null = null;
  private consumer: Consumer | null = null;
  private sharedProducer: Producer | null = null;
  private reader: PartitionReader | null = null;
  private taskManager!: TaskManager;
  private stateDirectory!: StateDirectory;
  private readonly partitionCounts = new Map<string, number>();
  private timers: NodeJS.Timeout[] = [];
  private stopping: Promise<void> | null = null;
  private rejoining = false;
  private wasReady = false;
  private doneResolve!: () => void;
  private doneReject!: (err: unknown) => void;
  /** The first fatal error, once one stopped the worker. */
  private fatal: { err: unknown } | undefined;
  /** Settles when the worker stopped: resolves after `stop()`, rejects when a fatal error stopped it. */
  readonly done: Promise<void>;

  constructor(config: WorkerConfig) {
    this.cfg = resolveConfig(config);
    this.done = new Promise<void>((res, rej) => {
      this.doneResolve = res;
      this.doneReject = rej;
    });
    this.done.catch(() => undefined);
  }

  on<E extends keyof WorkerEventMap>(event: E, listener: (...args: WorkerEventMap[E]) => void): () => void {
    this.emitter.on(event, listener as (...args: unknown[]) => void);
    return () => this.emitter.off(event, listener as (...args: unknown[]) => void);
  }

  private emit<E extends keyof WorkerEventMap>(event: E, ...args: WorkerEventMap[E]): void {
    if (this.emitter.listenerCount(event) > 0) this.emitter.emit(event, ...args);
  }

  get ready(): boolean {
    return this.taskManager?.ready ?? false;
  }

  get tasks(): ReadonlyArray<{ id: string; state: string }> {
    return this.taskManager ? this.taskManager.allTasks.map((t) => ({ id: t.id, state: t.state })) : [];
  }

  get logger(): Logger {
    return this.cfg.logger;
  }

  async start(): Promise<void> {
    const { cfg } = this;
    this.stateDirectory = new StateDirectory(cfg.stateDir, cfg.applicationId);
    this.stateDirectory.lock();
    try {
      this.kafka = new Kafka({
        clientId: cfg.clientId,
        brokers: cfg.brokerList,
        ssl: cfg.ssl,
        sasl: cfg.sasl,
        connectionTimeout: 3000,
        requestTimeout: 30000,
        retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 5000 },
        logLevel: KafkaLogLevel.WARN,
        logCreator: () => ({ namespace, level, log }) => {
          const { message, timestamp: _t, logger: _l, ...extra } = log as { message: string; timestamp?: string; logger?: string };
          const text = `${message} ${String((extra as { error?: unknown }).error ?? '')}`;
          if (KAFKAJS_NOISE.some((re) => re.test(text))) return;
          const l = level <= KafkaLogLevel.ERROR ? 'error' : level === KafkaLogLevel.WARN ? 'warn' : 'debug';
          cfg.logger[l]({ kafkajs: namespace, ...extra }, message);
        },
      });
      this.admin = this.kafka.admin();
      await this.connectAdmin(this.admin);
      await this.prepareTopics(this.admin);
      this.reader = new PartitionReader(this.kafka);
      if (cfg.guarantee === 'at_least_once') {
        this.sharedProducer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
        await this.sharedProducer.connect();
      }
      this.taskManager = new TaskManager({
        topology: cfg.topology,
        log: this.reader,
        logger: cfg.logger,
        createTask: (sub, partition) => this.createTask(sub, partition),
        fetchCommitted: (task) => this.fetchCommitted(task),
        pause: (tps) => this.consumer?.pause(tps),
        resume: (tps) => this.consumer?.resume(tps),
        seek: (topic, partition, offset) => this.consumer?.seek({ topic, partition, offset: String(offset) }),
        onMigrated: (err) => this.scheduleRejoin(`fenced (task ${err.taskId})`),
        onFatal: (err) => this.fail(err),
        onStateChange: () => this.checkReady(),
      });
      await this.startConsumer();
      this.timers.push(
        setInterval(() => void this.taskManager.commitDue(cfg.commitIntervalMs), Math.max(10, Math.floor(cfg.commitIntervalMs / 2))),
        setInterval(() => void this.taskManager.punctuateWallClock(), 50),
      );
    } catch (err) {
      await this.release();
      throw err;
    }
  }

  /** Stop on SIGTERM and SIGINT: commit, leave the group, then exit the process. */
  installSignalHandlers(exit = true): void {
    const onSignal = (signal: string) => {
      this.cfg.logger.info({ signal }, 'stopping');
      this.stop().then(
        () => exit && process.exit(0),
        (err) => {
          this.cfg.logger.error({ err }, 'stopping failed');
          if (exit) process.exit(1);
        },
      );
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const t of this.timers) clearInterval(t);
      this.timers = [];
      try {
        await this.consumer?.stop();
        await this.taskManager?.shutdown();
        await this.consumer?.disconnect();
      } finally {
        await this.release();
        // `done` tells how the worker ended: with the fatal error that stopped it, if one did
        if (this.fatal === undefined) this.doneResolve();
        else this.doneReject(this.fatal.err);
      }
    })();
    return this.stopping;
  }

  private fail(err: unknown): void {
    this.cfg.logger.error({ err }, 'worker stopping on a fatal error');
    this.fatal ??= { err };
    this.emit('error', err);
    void this.stop().catch(() => undefined);
  }

  private async release(): Promise<void> {
    await this.sharedProducer?.disconnect().catch(() => undefined);
    await this.reader?.close().catch(() => undefined);
    await this.admin?.disconnect().catch(() => undefined);
    this.sharedProducer = null;
    this.reader = null;
    this.admin = null;
    this.stateDirectory?.unlock();
  }

  private async connectAdmin(admin: Admin): Promise<void> {
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new BrokerUnreachableError(this.cfg.brokerList.join(','), Date.now() - started)), this.cfg.connectTimeoutMs);
    });
    try {
      await Promise.race([
        (async () => {
          await admin.connect();
          await admin.describeCluster();
        })(),
        timeout,
      ]);
    } catch (err) {
      if (err instanceof BrokerUnreachableError) throw err;
      throw new BrokerUnreachableError(this.cfg.brokerList.join(','), Date.now() - started, err);
    } finally {
      clearTimeout(timer);
    }
  }

  private async prepareTopics(admin: Admin): Promise<void> {
    const { topology, applicationId } = this.cfg;
    const existing = new Set(await admin.listTopics());
    const inputs = topology.sourceTopics;
    const missingInputs = inputs.filter((t) => !existing.has(t));
    if (missingInputs.length > 0) {
      throw new ConfigError(`input topic(s) ${missingInputs.join(', ')} do not exist; create them before starting the topology`);
    }
    const missingSinks = topology.sinkTopics.filter((t) => !existing.has(t));
    if (missingSinks.length > 0) {
      throw new ConfigError(`output topic(s) ${missingSinks.join(', ')} do not exist; create them before starting the topology`);
    }
    const meta = await admin.fetchTopicMetadata({ topics: [...inputs, ...topology.sinkTopics] });
    for (const t of meta.topics) this.partitionCounts.set(t.name, t.partitions.length);

    const toCreate: Array<{ topic: string; numPartitions: number; configEntries?: Array<{ name: string; value: string }> }> = [];
    for (const sub of topology.subTopologies) {
      const counts = sub.sourceTopics.map((t) => `${t} (${this.partitionCounts.get(t)})`);
      const distinct = new Set(sub.sourceTopics.map((t) => this.partitionCounts.get(t)));
      if (distinct.size > 1) throw new TopologyError(`co-partitioned topics must have the same partition count: ${counts.join(', ')}`);
      const n = this.partitionCounts.get(sub.sourceTopics[0]!)!;
      if (sub.partitions !== undefined && sub.partitions !== n) {
        throw new TopologyError(`the topology declares ${sub.partitions} partitions for ${sub.sourceTopics.join(', ')} but the broker has ${n}`);
      }
      for (const store of sub.stores) {
        const spec = topology.stores.get(store)!;
        if (!spec.logged) continue;
        const topic = changelogTopicName(applicationId, store);
        this.partitionCounts.set(topic, n);
        if (!existing.has(topic)) toCreate.push({ topic, numPartitions: n, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] });
      }
    }
    if (!existing.has(this.cfg.deadLetterTopic)) toCreate.push({ topic: this.cfg.deadLetterTopic, numPartitions: 1 });
    if (toCreate.length > 0) {
      try {
        await admin.createTopics({
          waitForLeaders: true,
          topics: toCreate.map((t) => ({ ...t, replicationFactor: this.cfg.replicationFactor ?? -1 })),
        });
      } catch (err) {
        // Another worker may have created them at the same moment.
        if ((err as { type?: string }).type !== 'TOPIC_ALREADY_EXISTS') throw err;
      }
    }
    const created = await admin.fetchTopicMetadata({ topics: [this.cfg.deadLetterTopic, ...toCreate.map((t) => t.topic)] });
    for (const t of created.topics) {
      const expected = this.partitionCounts.get(t.name);
      if (expected !== undefined && expected !== t.partitions.length) {
        throw new TopologyError(`changelog topic ${t.name} has ${t.partitions.length} partitions; its input has ${expected}`);
      }
      this.partitionCounts.set(t.name, t.partitions.length);
    }
  }

  private createTask(subId: number, partition: number): Task {
    const { cfg } = this;
    const sub = cfg.topology.subTopologies[subId]!;
    const id = taskIdOf(subId, partition);
    const producer: TaskProducer =
      cfg.guarantee === 'exactly_once'
        ? new TransactionalTaskProducer(this.kafka, `${cfg.applicationId}-${id}`, cfg.applicationId, cfg.transactionTimeoutMs)
        : new AtLeastOnceTaskProducer(this.sharedProducer!, (offsets) =>
            this.consumer!.commitOffsets(offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: String(o.offset) }))),
          );
    const events: TaskEvents = {
      deadLetter: (info) => this.emit('dead-letter', info),
      committed: (info) => this.emit('task.committed', info),
      aborted: (info) => this.emit('task.aborted', info),
      counted: (info) => this.emit('processor.count', info),
      processed: (info) => this.emit('processed', info),
      restoreProgress: (info) => this.emit('task.restore', info),
    };
    return new Task({
      applicationId: cfg.applicationId,
      id,
      subTopology: sub,
      partition,
      topology: cfg.topology,
      stores: new StoreManager({
        applicationId: cfg.applicationId,
        taskId: id,
        partition,
        specs: sub.stores.map((s) => cfg.topology.stores.get(s)!),
        stateDir: this.stateDirectory,
      }),
      collector: new RecordCollector((topic) => this.partitionCounts.get(topic) ?? 0),
      producer,
      deadLetterTopic: cfg.deadLetterTopic,
      processingErrorPolicy: cfg.processingErrorPolicy,
      deserializationErrorPolicy: cfg.deserializationErrorPolicy,
      maxBufferedBytes: 4 * 1024 * 1024,
      events,
    });
  }

  /**
   * Where a task resumes on each input: the group's committed offset, or, for a partition the group never committed,
   * the log start (null only if the topic has no such partition). A task started again inside a live consumer (after
   * a failed commit) must seek back over the records of its aborted first transaction, which the consumer has
   * already fetched past.
   */
  private async fetchCommitted(task: Task): Promise<Map<string, number | null>> {
    const offsets = await this.admin!.fetchOffsets({ groupId: this.cfg.applicationId, topics: [...task.inputTopics] });
    const resumeAt = async (t: (typeof offsets)[number]): Promise<[string, number | null]> => {
      const p = t.partitions.find((x) => x.partition === task.partition);
      const o = p ? Number(p.offset) : -1;
      if (o >= 0) return [t.topic, o];
      const log = (await this.admin!.fetchTopicOffsets(t.topic)).find((x) => x.partition === task.partition);
      return [t.topic, log ? Number(log.low) : null];
    };
    return new Map(await Promise.all(offsets.map(resumeAt)));
  }

  private async startConsumer(): Promise<void> {
    const { cfg } = this;
    const consumer = this.kafka.consumer({
      groupId: cfg.applicationId,
      partitionAssigners: [taskAssigner(cfg.topology, () => this.taskManager.taskIds)],
      sessionTimeout: cfg.sessionTimeoutMs,
      heartbeatInterval: Math.max(500, Math.floor(cfg.sessionTimeoutMs / 5)),
      rebalanceTimeout: Math.max(30000, cfg.sessionTimeoutMs),
      readUncommitted: false,
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: 100,
    });
    this.consumer = consumer;
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      void this.taskManager.onAssignment(e.payload.memberId, e.payload.memberAssignment);
    });
    consumer.on(consumer.events.REBALANCING, () => {
      this.emit('rebalance');
      void this.taskManager.commitAll();
    });
    consumer.on(consumer.events.CRASH, (e) => {
      if (consumer !== this.consumer || this.stopping) return;
      const { error, restart } = e.payload as { error: Error; restart: boolean };
      if (restart) return;
      // kafkajs gives up on some errors of a broker outage (e.g. the coordinator is gone while the broker restarts):
      // rejoin with a fresh consumer, as after fencing; tasks restart from their commits
      if (isBrokerOutage(error)) this.scheduleRejoin(`the consumer gave up during a broker outage (${error.message})`);
      else this.fail(new WeirError(`the consumer stopped: ${error.message}`, { cause: error }));
    });
    await consumer.connect();
    await consumer.subscribe({ topics: cfg.topology.sourceTopics, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: cfg.partitionsConsumedConcurrently,
      eachBatch: (payload) => this.eachBatch(payload),
    });
  }

  private async eachBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const task = this.taskManager.taskFor(batch.topic, batch.partition);
    if (!task || task.state !== 'RUNNING' || this.rejoining) return;
    let count = 0;
    try {
      await task.exclusive(async () => {
        if (task.state !== 'RUNNING') return;
        for (const m of batch.messages) {
          if (!isRunning() || isStale() || this.rejoining) break;
          await task.process(batch.topic, batch.partition, m);
          resolveOffset(m.offset);
          // The record bound holds per transaction, not per fetched batch: one fetch can bring far more records.
          // A failed commit throws what TaskManager.handleTaskError takes (migrated, corrupted or fatal), as below.
          if (task.uncommittedRecords >= this.cfg.commitMaxRecords) await task.commit();
          // A big batch must not outlast the session: kafkajs sends only when the heartbeat interval has passed.
          if (++count % 500 === 0) await heartbeat().catch(() => undefined);
        }
      });
    } catch (err) {
      if (err instanceof WeirError && err.retriable && !(err instanceof TaskMigratedError) && !(err instanceof TaskCorruptedError)) {
        // The records from the failed one on stay unresolved and are fetched again after a pause.
        this.cfg.logger.warn({ task: task.id, err: err.message }, 'retriable failure while processing; retrying');
        await new Promise((r) => setTimeout(r, 1000));
        return;
      }
      await this.taskManager.handleTaskError(task, err);
      return;
    }
    if (count > 0) this.emit('processed', { taskId: task.id, records: count });
    if (this.emitter.listenerCount('lag') > 0) this.emit('lag', { topic: batch.topic, partition: batch.partition, lag: Number(batch.offsetLag()) });
    await heartbeat().catch(() => undefined);
  }

  private checkReady(): void {
    const ready = this.ready;
    if (ready && !this.wasReady) this.emit('ready');
    this.wasReady = ready;
  }

  /** Fenced, or the consumer gave up in a broker outage: close every task as a zombie and rejoin the group as a fresh member (outside the batch that saw it). */
  private scheduleRejoin(reason: string): void {
    if (this.rejoining || this.stopping) return;
    this.rejoining = true;
    this.cfg.logger.warn({ reason }, `${reason}: closing all tasks and rejoining the group`);
    setImmediate(async () => {
      try {
        const old = this.consumer;
        this.consumer = null;
        await this.taskManager.closeAll(false);
        await old?.disconnect().catch(() => undefined);
        this.taskManager.reset();
        this.rejoining = false;
        if (!this.stopping) await this.startConsumer();
      } catch (e) {
        this.rejoining = false;
        this.fail(e);
      }
    });
  }
}

function resolveConfig(c: WorkerConfig): Resolved {
  if (!c.applicationId || !/^[A-Za-z0-9._-]+$/.test(c.applicationId)) {
    throw new ConfigError(`applicationId '${c.applicationId ?? ''}' must be non-empty and use only letters, digits, '.', '_' and '-'`);
  }
  const brokerList = (Array.isArray(c.brokers) ? c.brokers : String(c.brokers ?? '').split(','))
    .map((b) => b.trim())
    .filter(Boolean);
  if (brokerList.length === 0) throw new ConfigError('brokers is empty; give host:port of at least one Kafka broker (KAFKA_BROKERS)');
  for (const b of brokerList) if (!/^[^:\s]+:\d+$/.test(b)) throw new ConfigError(`broker address '${b}' is not host:port`);
  const positive = (name: string, v: number | undefined, def: number) => {
    const value = v ?? def;
    if (!Number.isFinite(value) || value <= 0) throw new ConfigError(`${name} must be a positive number, got ${v}`);
    return value;
  };
  const guarantee = c.guarantee ?? 'exactly_once';
  if (guarantee !== 'exactly_once' && guarantee !== 'at_least_once') {
    throw new ConfigError(`guarantee must be 'exactly_once' or 'at_least_once', got '${guarantee}'`);
  }
  return {
    applicationId: c.applicationId,
    topology: c.topology,
    brokers: c.brokers,
    brokerList,
    stateDir: c.stateDir ?? path.join(os.tmpdir(), 'weir'),
    guarantee,
    commitIntervalMs: positive('commitIntervalMs', c.commitIntervalMs, 100),
    commitMaxRecords: positive('commitMaxRecords', c.commitMaxRecords, 10000),
    deadLetterTopic: c.deadLetterTopic ?? `${c.applicationId}-dead-letters`,
    processingErrorPolicy: c.processingErrorPolicy ?? 'fail',
    deserializationErrorPolicy: c.deserializationErrorPolicy ?? 'dead-letter',
    connectTimeoutMs: positive('connectTimeoutMs', c.connectTimeoutMs, 15000),
    sessionTimeoutMs: positive('sessionTimeoutMs', c.sessionTimeoutMs, 10000),
    transactionTimeoutMs: positive('transactionTimeoutMs', c.transactionTimeoutMs, 60000),
    partitionsConsumedConcurrently: positive('partitionsConsumedConcurrently', c.partitionsConsumedConcurrently, 4),
    replicationFactor: c.replicationFactor,
    clientId: c.clientId ?? `weir-${c.applicationId}`,
    ssl: c.ssl,
    sasl: c.sasl,
    logger: c.logger ?? pino({ level: process.env.WEIR_LOG_LEVEL ?? 'info', base: { app: c.applicationId } }),
  };
}
