/**
 * Pieces shared by the bench driver (bench/index.ts and its sections) and its child processes.
 */
import fs from 'node:fs';
import kafkajs, { type Admin, type Kafka } from 'kafkajs';
import type { SchemaRegistryClient } from '../schemas/registry-client.js';

const { Kafka: KafkaClient, logLevel } = kafkajs;

export type Variant = 'exactly_once' | 'at_least_once' | 'bare';

export const VARIANTS: readonly Variant[] = ['exactly_once', 'at_least_once', 'bare'];

/** What the driver hands a ceiling variant child, bench/variant.ts (as one JSON argument). */
export interface VariantSpec {
  variant: Variant;
  brokers: string;
  input: string;
  output: string;
  partitions: number;
  records: number;
  /** Consumer group (bare loop) or weir applicationId. */
  groupId: string;
  /** weir variants: root of the RocksDB state (a fresh temporary directory). */
  stateDir: string;
  /** Batches of different partitions processed at once (weir's default is 4; the bare loop uses the same). */
  concurrency: number;
  /** Give up after this long. */
  timeoutMs: number;
  /** The local broker JVM, whose CPU time the child reads from /proc; null: unknown (KAFKA_BROKERS). */
  brokerPid: number | null;
}

/** Peaks of a child process's memory, sampled every 250 ms (bench/child.ts). */
export interface MemoryPeaks {
  /** Resident set size. */
  peakRssMb: number;
  /** V8 heap (heapTotal) and memory outside it (Buffers, native). */
  peakHeapMb: number;
  peakExternalMb: number;
}

/** What a variant child reports (one line on stdout, prefixed by RESULT_PREFIX). */
export interface VariantResult extends MemoryPeaks {
  variant: Variant;
  records: number;
  /** start() → the group's committed offsets reach the end of every input partition. */
  seconds: number;
  /** start() → the first committed offset seen (group join, task restore, producer init). */
  startupSeconds: number;
  recordsPerSecond: number;
  /** CPU time (user + system) of the variant's process from start() to drained. */
  cpuSeconds: number;
  /** CPU time of the broker JVM over the same interval; null when it could not be read. */
  brokerCpuSeconds: number | null;
  /** Sum of the output topic's high watermarks when drained (under exactly-once this includes commit markers). */
  outputOffsets: number;
}

/** A child's result line on stdout; anything else it prints goes to the driver's stderr. */
export const RESULT_PREFIX = 'WEIR_BENCH_RESULT ';
/** A child that waits for the driver prints this line when it is ready (then reads `go` / `stop` on stdin). */
export const READY_LINE = 'WEIR_BENCH_READY';

export const MB = 1024 * 1024;

export const log = (msg: string) => process.stderr.write(`${msg}\n`);

export function kafkaClient(brokers: string, clientId: string): Kafka {
  return new KafkaClient({ clientId, brokers: brokers.split(','), logLevel: logLevel.NOTHING });
}

/** End offset of every partition of every topic: topic → partition → offset. */
export type TopicEnds = ReadonlyMap<string, ReadonlyMap<number, number>>;

/**
 * Committed offsets of `groupId` on the topics of `ends`, summed, and whether every partition reached its end offset.
 */
export async function drainState(admin: Admin, groupId: string, ends: TopicEnds): Promise<{ drained: boolean; committed: number }> {
  const committed = await admin.fetchOffsets({ groupId, topics: [...ends.keys()] });
  let drained = true;
  let sum = 0;
  for (const [topic, partitions] of ends) {
    const t = committed.find((c) => c.topic === topic);
    for (const [partition, end] of partitions) {
      const c = t?.partitions.find((p) => p.partition === partition);
      const o = c ? Number(c.offset) : -1;
      if (o > 0) sum += o;
      if (o < end) drained = false;
    }
  }
  return { drained, committed: sum };
}

export async function endOffsets(admin: Admin, topic: string): Promise<Map<number, number>> {
  const offsets = await admin.fetchTopicOffsets(topic);
  return new Map(offsets.map((o) => [o.partition, Number(o.high)]));
}

export async function topicEnds(admin: Admin, topics: readonly string[]): Promise<Map<string, Map<number, number>>> {
  const out = new Map<string, Map<number, number>>();
  for (const t of topics) out.set(t, await endOffsets(admin, t));
  return out;
}

export const sumEnds = (ends: TopicEnds): number => [...ends.values()].reduce((a, m) => a + [...m.values()].reduce((x, y) => x + y, 0), 0);

/**
 * The bench's topics keep everything: scenario event times reach back further than the local broker's 24 h retention,
 * which would otherwise delete input while it is drained (kafkajs then logs "Offset out of range").
 */
const KEEP_ALL = [
  { name: 'retention.ms', value: '-1' },
  { name: 'retention.bytes', value: '-1' },
];

/** Creates the topics and waits until every partition has a leader; a broker that just started may need retries. */
export async function createTopics(admin: Admin, topics: string[], partitions: number): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await admin.createTopics({ waitForLeaders: true, topics: topics.map((topic) => ({ topic, numPartitions: partitions, configEntries: KEEP_ALL })) });
    } catch (err) {
      if ((err as { type?: string }).type !== 'TOPIC_ALREADY_EXISTS' && attempt >= 10) throw err;
    }
    try {
      const meta = await admin.fetchTopicMetadata({ topics });
      if (meta.topics.length === topics.length && meta.topics.every((t) => t.partitions.length === partitions && t.partitions.every((p) => p.leader >= 0))) {
        return;
      }
    } catch (err) {
      if (attempt >= 10) throw err;
    }
    if (attempt >= 10) throw new Error(`topics ${topics.join(', ')} have no leaders after ${attempt} attempts`);
    await sleep(500 * attempt);
  }
}

/**
 * Deletes what the bench made under a name prefix: topics (inputs, outputs, changelogs, dead letters), consumer
 * groups, and registry subjects (`<topic>-value`). Every bench-owned name starts with its run id.
 */
export async function removeOwned(admin: Admin, prefix: string, registry: SchemaRegistryClient | null): Promise<void> {
  const topics = (await admin.listTopics().catch(() => [] as string[])).filter((t) => t.startsWith(prefix));
  if (topics.length > 0) await admin.deleteTopics({ topics }).catch((e: Error) => log(`could not delete topics: ${e.message}`));
  const groups = (await admin.listGroups().catch(() => ({ groups: [] }))).groups.map((g) => g.groupId).filter((g) => g.startsWith(prefix));
  if (groups.length > 0) await admin.deleteGroups(groups).catch((e: Error) => log(`could not delete groups: ${e.message}`));
  if (registry) {
    const subjects = (await registry.subjects().catch(() => [] as string[])).filter((s) => s.startsWith(prefix));
    for (const s of subjects) await registry.deleteSubject(s, { permanent: true }).catch((e: Error) => log(`could not delete subject ${s}: ${e.message}`));
  }
}

/** CPU seconds (user + system) a process used so far, from Linux /proc; null when not readable. */
export function processCpuSeconds(pid: number | null): number | null {
  if (pid === null) return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is stat field 3 (state); utime and stime are fields 14 and 15, in clock ticks (USER_HZ = 100)
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks / 100 : null;
  } catch {
    return null;
  }
}

/**
 * Polls until `groupId`'s committed offsets reach `ends` (or `failed` rejects, or the deadline passes).
 * Returns when the first committed offset was seen and when drained (performance.now() ms).
 */
export async function waitDrained(
  admin: Admin,
  groupId: string,
  ends: TopicEnds,
  opts: { deadline: number; failed: Promise<never>; what: string },
): Promise<{ firstCommit: number | null; drained: number }> {
  let firstCommit: number | null = null;
  for (;;) {
    const s = await Promise.race([drainState(admin, groupId, ends), opts.failed]);
    const now = performance.now();
    if (firstCommit === null && s.committed > 0) firstCommit = now;
    if (s.drained) return { firstCommit, drained: now };
    if (now > opts.deadline) throw new Error(`${opts.what}: not drained in time (committed ${s.committed} of ${sumEnds(ends)})`);
    await Promise.race([sleep(100), opts.failed]);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export const round = (x: number, digits: number) => Number(x.toFixed(digits));

export const int = (x: number) => Math.round(x).toLocaleString('en-US');

/** A plain text table: the first column left-aligned, the others right-aligned. */
export function formatTable(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [fmt(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(fmt)].join('\n');
}
