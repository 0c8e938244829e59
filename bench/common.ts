/**
 * Pieces shared by the bench driver (bench/index.ts) and the per-variant child (bench/variant.ts).
 */
import fs from 'node:fs';
import kafkajs, { type Admin, type Kafka } from 'kafkajs';

const { Kafka: KafkaClient, logLevel } = kafkajs;

export type Variant = 'exactly_once' | 'at_least_once' | 'bare';

export const VARIANTS: readonly Variant[] = ['exactly_once', 'at_least_once', 'bare'];

/** What the driver hands a variant child (as one JSON argument). */
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

/** What a variant child reports (one line on stdout, prefixed by RESULT_PREFIX). */
export interface VariantResult {
  variant: Variant;
  records: number;
  /** start() → the group's committed offsets reach the end of every input partition. */
  seconds: number;
  /** start() → the first committed offset seen (group join, task restore, producer init). */
  startupSeconds: number;
  recordsPerSecond: number;
  /** Peak resident set size of the variant's process, sampled every 250 ms. */
  peakRssMb: number;
  /** Peak V8 heap size (heapTotal) and peak memory outside it (Buffers, native), sampled with the RSS. */
  peakHeapMb: number;
  peakExternalMb: number;
  /** CPU time (user + system) of the variant's process from start() to drained. */
  cpuSeconds: number;
  /** CPU time of the broker JVM over the same interval; null when it could not be read. */
  brokerCpuSeconds: number | null;
  /** Sum of the output topic's high watermarks when drained (under exactly-once this includes commit markers). */
  outputOffsets: number;
}

export const RESULT_PREFIX = 'WEIR_BENCH_RESULT ';

export function kafkaClient(brokers: string, clientId: string): Kafka {
  return new KafkaClient({ clientId, brokers: brokers.split(','), logLevel: logLevel.NOTHING });
}

/** Committed offsets of `groupId` on `topic`, summed, and whether every partition reached its end offset. */
export async function drainState(
  admin: Admin,
  groupId: string,
  topic: string,
  ends: ReadonlyMap<number, number>,
): Promise<{ drained: boolean; committed: number }> {
  const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
  let drained = true;
  let sum = 0;
  for (const [partition, end] of ends) {
    const c = committed?.partitions.find((p) => p.partition === partition);
    const o = c ? Number(c.offset) : -1;
    if (o > 0) sum += o;
    if (o < end) drained = false;
  }
  return { drained, committed: sum };
}

export async function endOffsets(admin: Admin, topic: string): Promise<Map<number, number>> {
  const offsets = await admin.fetchTopicOffsets(topic);
  return new Map(offsets.map((o) => [o.partition, Number(o.high)]));
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

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
