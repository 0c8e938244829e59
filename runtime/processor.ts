import type { KeyValueStore } from '../state/store.js';

export type Headers = { [name: string]: Buffer | undefined };

/** A record as processors see it: deserialized key and value, event timestamp (ms), headers. */
export interface Record<K, V> {
  key: K;
  value: V;
  timestamp: number;
  headers?: Headers;
}

/** Where the record being processed came from. */
export interface RecordMetadata {
  topic: string;
  partition: number;
  offset: string;
}

export type PunctuationType = 'stream-time' | 'wall-clock';

export interface Cancellable {
  cancel(): void;
}

/**
 * What a processor gets in `init`:
 * - `forward` to its children (all, or one by name); await it, or the task awaits it after `process`;
 * - the state stores connected to it;
 * - the current record's metadata, stream time and wall-clock time;
 * - punctuators on stream time or wall-clock time.
 */
export interface ProcessorContext<KOut = unknown, VOut = unknown> {
  readonly applicationId: string;
  readonly taskId: string;
  readonly partition: number;
  forward(record: Record<KOut, VOut>, childName?: string): Promise<void>;
  getStore<K, V>(name: string): KeyValueStore<K, V>;
  /** Count an occurrence for the metrics (e.g. 'duplicates'); not transactional, so a replay counts again. */
  count(name: string, n?: number): void;
  /** The record being processed; undefined inside a punctuation. */
  recordMetadata(): RecordMetadata | undefined;
  /** The largest timestamp this task has seen (ms), or -1 before the first record. */
  currentStreamTime(): number;
  currentSystemTime(): number;
  schedule(intervalMs: number, type: PunctuationType, callback: (timestamp: number) => void | Promise<void>): Cancellable;
}

export interface Processor<KIn = unknown, VIn = unknown, KOut = unknown, VOut = unknown> {
  init?(context: ProcessorContext<KOut, VOut>): void | Promise<void>;
  process(record: Record<KIn, VIn>): void | Promise<void>;
  close?(): void | Promise<void>;
}

export type ProcessorSupplier<KIn = unknown, VIn = unknown, KOut = unknown, VOut = unknown> = () => Processor<
  KIn,
  VIn,
  KOut,
  VOut
>;
