import { partitionForKey } from './partitioner.js';
import { WeirError } from './errors.js';

export interface OutgoingRecord {
  topic: string;
  partition: number;
  key: Buffer | null;
  value: Buffer | null;
  timestamp: number;
  headers?: Record<string, Buffer | string>;
}

/**
 * Collects the records one task sends during a transaction.
 * Responsible for:
 * - choosing the partition (murmur2 of the key, as the Java client does; round-robin for null keys);
 * - buffering until the checkpoint or a size bound drains it.
 */
export class RecordCollector {
  private pending: OutgoingRecord[] = [];
  private bytes = 0;
  private roundRobin = 0;
  private outputs = new Map<string, number>();
  private outputTimestamps: number[] = [];

  constructor(private readonly partitionsOf: (topic: string) => number) {}

  /** An output (or dead-letter) record; counted for the transaction's statistics. */
  send(topic: string, key: Buffer | null, value: Buffer | null, timestamp: number, headers?: Record<string, Buffer | string>): void {
    const n = this.partitionsOf(topic);
    if (!(n > 0)) throw new WeirError(`output topic '${topic}' is unknown to this worker (does it exist?)`);
    const partition = key === null ? this.roundRobin++ % n : partitionForKey(key, n);
    this.push({ topic, partition, key, value, timestamp, headers });
    this.outputs.set(topic, (this.outputs.get(topic) ?? 0) + 1);
    this.outputTimestamps.push(timestamp);
  }

  /** A changelog record: its partition is the task's. */
  sendChangelog(topic: string, partition: number, key: Buffer, value: Buffer | null, timestamp: number): void {
    this.push({ topic, partition, key, value, timestamp });
  }

  private push(r: OutgoingRecord): void {
    this.pending.push(r);
    this.bytes += (r.key?.length ?? 0) + (r.value?.length ?? 0) + 32;
  }

  /** Outputs per topic and their timestamps since the last call: what a committed transaction published. */
  takeStats(): { outputs: Map<string, number>; timestamps: number[] } {
    const stats = { outputs: this.outputs, timestamps: this.outputTimestamps };
    this.outputs = new Map();
    this.outputTimestamps = [];
    return stats;
  }

  get size(): number {
    return this.pending.length;
  }

  get bufferedBytes(): number {
    return this.bytes;
  }

  drain(): OutgoingRecord[] {
    const out = this.pending;
    this.pending = [];
    this.bytes = 0;
    return out;
  }

  /** Drop everything pending (an aborted transaction), statistics included. */
  clear(): void {
    this.pending = [];
    this.bytes = 0;
    this.takeStats();
  }
}
