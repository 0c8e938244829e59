import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import type { Topology } from './topology.js';
import { Task } from './task.js';
import { taskIdOf } from './assignor.js';
import { RecordCollector, type OutgoingRecord } from './record-collector.js';
import { PartitionReader, type RawMessage } from './partition-reader.js';
import { TransactionalTaskProducer, type SendResult, type TaskProducer, type TopicPartitionOffset } from './task-producer.js';
import { StoreManager, changelogTopicName } from '../state/store-manager.js';
import { StateDirectory } from '../state/state-directory.js';
import { RESET_MARKER_HEADER, RESET_MARKER_KEY, type LogReader } from '../state/changelog-reader.js';
import { WeirError } from './errors.js';

/** Where a replay puts each input partition's consumer position. */
export type ReplayTarget =
  | { kind: 'earliest' }
  | { kind: 'timestamp'; timestamp: number }
  /** `topic` may be left out when the topology reads one topic. */
  | { kind: 'offsets'; offsets: Array<{ topic?: string; partition: number; offset: number }> };

export class ReplayRefusedError extends WeirError {}

export interface ReplayPartitionPlan {
  topic: string;
  partition: number;
  /** First retained offset; must be 0 for the state to be rebuilt exactly. */
  logStart: number;
  end: number;
  /** The replay point: records before it rebuild state silently, records from it on are processed (and emitted) by the workers. */
  target: number;
}

export interface ReplayPlan {
  applicationId: string;
  partitions: ReplayPartitionPlan[];
  tasks: Array<{ taskId: string; partition: number; topics: string[]; stores: string[]; rebuildRecords: number }>;
}

export interface ReplayOptions {
  applicationId: string;
  topology: Topology;
  brokers: string | string[];
  /** A configured client (TLS, SASL, timeouts); without it one is made from `brokers`. */
  kafka?: Kafka;
  target: ReplayTarget;
  /** Transactions of the rebuild commit every this many records; default 5000. */
  commitEvery?: number;
  onProgress?: (info: { taskId: string; records: number; total: number }) => void;
}

function kafkaOf(opts: Pick<ReplayOptions, 'brokers' | 'kafka'>): Kafka {
  const { brokers } = opts;
  return opts.kafka ?? new Kafka({ clientId: 'weir-replay', brokers: Array.isArray(brokers) ? brokers : brokers.split(','), logLevel: logLevel.NOTHING });
}

/**
 * Works out a replay and refuses one that cannot be exact:
 * - the application's group must have no live members (stop the topology first);
 * - every input partition must still hold its records from offset 0 (retention reaches back);
 * - the replay point must lie within each partition.
 */
export async function planReplay(opts: ReplayOptions, admin?: Admin): Promise<ReplayPlan> {
  const own = !admin;
  const a = admin ?? kafkaOf(opts).admin();
  if (own) await a.connect();
  try {
    const { groups } = await a.describeGroups([opts.applicationId]);
    const members = groups[0]?.members.length ?? 0;
    if (members > 0) {
      throw new ReplayRefusedError(
        `the topology '${opts.applicationId}' still has ${members} live member(s) in its consumer group; stop its workers first`,
      );
    }
    const partitions: ReplayPartitionPlan[] = [];
    for (const topic of opts.topology.sourceTopics) {
      const offsets = await a.fetchTopicOffsets(topic);
      const byTime = opts.target.kind === 'timestamp' ? await a.fetchTopicOffsetsByTimestamp(topic, opts.target.timestamp) : [];
      for (const o of offsets.sort((x, y) => x.partition - y.partition)) {
        const logStart = Number(o.low);
        const end = Number(o.high);
        let target: number;
        switch (opts.target.kind) {
          case 'earliest':
            target = logStart;
            break;
          case 'timestamp': {
            const t = byTime.find((b) => b.partition === o.partition);
            target = t && Number(t.offset) >= 0 ? Number(t.offset) : end;
            break;
          }
          case 'offsets': {
            const single = opts.topology.sourceTopics.length === 1;
            const given = opts.target.offsets.find((x) => x.partition === o.partition && (x.topic === topic || (x.topic === undefined && single)));
            if (!given) throw new ReplayRefusedError(`no replay offset given for ${topic}/${o.partition}; give one for every input partition`);
            target = given.offset;
            break;
          }
          default: {
            const never: never = opts.target;
            throw new WeirError(`unknown replay target ${JSON.stringify(never)}`);
          }
        }
        if (logStart > 0) {
          throw new ReplayRefusedError(
            `retention no longer reaches back: ${topic}/${o.partition} starts at offset ${logStart}, so the state before the replay point cannot be rebuilt`,
          );
        }
        if (target < logStart || target > end) {
          throw new ReplayRefusedError(`replay offset ${target} for ${topic}/${o.partition} is outside the partition (${logStart}..${end})`);
        }
        partitions.push({ topic, partition: o.partition, logStart, end, target });
      }
    }
    const tasks: ReplayPlan['tasks'] = [];
    for (const sub of opts.topology.subTopologies) {
      const counts = new Set(sub.sourceTopics.map((t) => partitions.filter((p) => p.topic === t).length));
      if (counts.size > 1) throw new ReplayRefusedError(`co-partitioned topics ${sub.sourceTopics.join(', ')} have different partition counts`);
      const n = partitions.filter((p) => p.topic === sub.sourceTopics[0]).length;
      for (let p = 0; p < n; p++) {
        const own = partitions.filter((x) => x.partition === p && sub.sourceTopics.includes(x.topic));
        tasks.push({
          taskId: taskIdOf(sub.id, p),
          partition: p,
          topics: sub.sourceTopics,
          stores: sub.stores,
          rebuildRecords: own.reduce((sum, x) => sum + (x.target - x.logStart), 0),
        });
      }
    }
    return { applicationId: opts.applicationId, partitions, tasks };
  } finally {
    if (own) await a.disconnect();
  }
}

export function describePlan(plan: ReplayPlan): string {
  const lines = [`replay of '${plan.applicationId}':`];
  for (const p of plan.partitions) {
    const rebuild = p.target > p.logStart ? `rebuild state from offsets ${p.logStart}..${p.target - 1} without output` : 'start from empty state';
    const again = p.end > p.target ? `process ${p.target}..${p.end - 1} again (${p.end - p.target} records)` : 'nothing to process again';
    lines.push(`  ${p.topic}/${p.partition}: ${rebuild}, then ${again}`);
  }
  for (const t of plan.tasks) if (t.stores.length > 0) lines.push(`  task ${t.taskId}: stores ${t.stores.join(', ')} rebuilt from ${t.rebuildRecords} records`);
  return lines.join('\n');
}

/**
 * The producer of a rebuild: only changelog records reach Kafka (outputs and dead letters are dropped), each
 * changelog partition starts with a reset marker, and no input offsets are committed (the plan sets them at the end).
 */
class RebuildProducer implements TaskProducer {
  readonly guarantee = 'exactly_once' as const;
  constructor(
    private readonly inner: TaskProducer,
    private readonly changelogs: ReadonlyArray<{ topic: string; partition: number }>,
  ) {}

  async init(): Promise<void> {
    await this.inner.init();
    const now = Date.now();
    await this.inner.send(
      this.changelogs.map((c) => ({ ...c, key: RESET_MARKER_KEY, value: null, timestamp: now, headers: { [RESET_MARKER_HEADER]: '1' } })),
    );
    await this.inner.commit([]);
  }

  send(records: OutgoingRecord[]): Promise<SendResult> {
    const changelogTopics = new Set(this.changelogs.map((c) => c.topic));
    return this.inner.send(records.filter((r) => changelogTopics.has(r.topic)));
  }

  commit(_offsets: TopicPartitionOffset[]): Promise<void> {
    return this.inner.commit([]);
  }

  abort(): Promise<void> {
    return this.inner.abort();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

const NOTHING_TO_RESTORE: LogReader = { read: async (_t, _p, from) => from ?? 0 };

/**
 * Carries out a plan: rebuilds each task's stores from its input up to the replay point (writing only changelogs, after
 * a reset marker that makes every worker drop its old local state on restore), then moves the group's offsets to the
 * replay point. The workers, started again, restore and re-emit from there on. Co-partitioned inputs are merged by
 * record timestamp during the rebuild.
 */
export async function executeReplay(opts: ReplayOptions, plan: ReplayPlan): Promise<{ rebuilt: number }> {
  const kafka = kafkaOf(opts);
  const admin = kafka.admin();
  await admin.connect();
  const reader = new PartitionReader(kafka);
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'weir-replay-'));
  const stateDir = new StateDirectory(scratch, opts.applicationId);
  let rebuilt = 0;
  try {
    // The group must still be empty now that we are about to move its offsets.
    await planReplay(opts, admin);
    for (const t of plan.tasks) {
      const sub = opts.topology.subTopologies.find((s) => s.sourceTopics.includes(t.topics[0]!))!;
      const specs = sub.stores.map((s) => opts.topology.stores.get(s)!);
      const changelogs = specs.filter((s) => s.logged).map((s) => ({ topic: changelogTopicName(opts.applicationId, s.name), partition: t.partition }));
      if (changelogs.length === 0) continue;
      const producer = new RebuildProducer(
        new TransactionalTaskProducer(kafka, `${opts.applicationId}-${t.taskId}`, opts.applicationId, 60000),
        changelogs,
      );
      const task = new Task({
        applicationId: opts.applicationId,
        id: t.taskId,
        subTopology: sub,
        partition: t.partition,
        topology: opts.topology,
        stores: new StoreManager({ applicationId: opts.applicationId, taskId: t.taskId, partition: t.partition, specs, stateDir }),
        collector: new RecordCollector(() => 1),
        producer,
        deadLetterTopic: `${opts.applicationId}-dead-letters`,
        processingErrorPolicy: 'dead-letter',
        deserializationErrorPolicy: 'dead-letter',
        maxBufferedBytes: Number.MAX_SAFE_INTEGER,
        events: {},
      });
      await task.restore(NOTHING_TO_RESTORE);
      await task.start(new Map());
      let done = 0;
      const commitEvery = opts.commitEvery ?? 5000;
      for await (const { topic, message } of mergeByTimestamp(reader, plan.partitions.filter((p) => p.partition === t.partition && t.topics.includes(p.topic)))) {
        await task.process(topic, t.partition, message);
        if (++done % commitEvery === 0) {
          await task.commit();
          opts.onProgress?.({ taskId: t.taskId, records: done, total: t.rebuildRecords });
        }
      }
      await task.closeClean();
      opts.onProgress?.({ taskId: t.taskId, records: done, total: t.rebuildRecords });
      rebuilt += done;
    }
    for (const topic of opts.topology.sourceTopics) {
      await admin.setOffsets({
        groupId: opts.applicationId,
        topic,
        partitions: plan.partitions.filter((p) => p.topic === topic).map((p) => ({ partition: p.partition, offset: String(p.target) })),
      });
    }
    return { rebuilt };
  } finally {
    await reader.close().catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Records of several partitions up to their replay points, smallest timestamp first (ties: plan order). */
async function* mergeByTimestamp(reader: PartitionReader, parts: ReplayPartitionPlan[]): AsyncGenerator<{ topic: string; message: RawMessage }> {
  const cursors = parts
    .filter((p) => p.target > p.logStart)
    .map((p) => ({ topic: p.topic, it: reader.batches(p.topic, p.partition, p.logStart, { untilOffset: p.target }), buf: [] as RawMessage[], pos: 0, done: false }));
  const fill = async (c: (typeof cursors)[number]) => {
    while (c.pos >= c.buf.length && !c.done) {
      const r = await c.it.next();
      if (r.done) c.done = true;
      else {
        c.buf = r.value.messages;
        c.pos = 0;
      }
    }
  };
  for (;;) {
    let best: (typeof cursors)[number] | undefined;
    for (const c of cursors) {
      await fill(c);
      if (c.pos >= c.buf.length) continue;
      if (!best || Number(c.buf[c.pos]!.timestamp) < Number(best.buf[best.pos]!.timestamp)) best = c;
    }
    if (!best) return;
    yield { topic: best.topic, message: best.buf[best.pos++]! };
  }
}
