import type { SyncSerde } from '../runtime/serde.js';

/** A key and its value, as a scan yields them. */
export interface KeyValue<K, V> {
  key: K;
  value: V;
}

/**
 * The key-value store a processor sees (`context.getStore(name)`).
 * - Reads see the task's own uncommitted writes.
 * - Writes are buffered in the task until its transaction commits; they are synchronous.
 * - Scans run in byte order of the serialized keys, as Kafka Streams' are.
 */
export interface KeyValueStore<K, V> {
  readonly name: string;
  get(key: K): Promise<V | undefined>;
  put(key: K, value: V): void;
  delete(key: K): void;
  /** Entries with from <= key <= to (both optional, both inclusive). */
  range(from?: K, to?: K): AsyncIterable<KeyValue<K, V>>;
  /** Entries whose serialized key starts with the serialized prefix. */
  prefixScan(prefix: K): AsyncIterable<KeyValue<K, V>>;
  prefixScan<P>(prefix: P, prefixSerde: SyncSerde<P>): AsyncIterable<KeyValue<K, V>>;
  all(): AsyncIterable<KeyValue<K, V>>;
}

/** One change for a backend: a put (value) or a delete (null). */
export type ByteChange = readonly [key: Buffer, value: Buffer | null];

/**
 * The bytes underneath a store, one instance per store per task.
 * Responsible for:
 * - keeping committed data only, together with the changelog offset it reflects;
 * - applying a batch of changes and that offset atomically (`write`).
 */
export interface StoreBackend {
  readonly kind: 'rocksdb' | 'memory';
  /** Whether the data outlives the process (a memory backend restores from offset 0). */
  readonly persistent: boolean;
  open(): Promise<void>;
  get(key: Buffer): Promise<Buffer | undefined>;
  /** Apply the changes and record `changelogOffset` (the next changelog offset to read) in one atomic step. */
  write(changes: readonly ByteChange[], changelogOffset: number | null): Promise<void>;
  /** The next changelog offset this backend's data needs, or null when it has none. */
  changelogOffset(): Promise<number | null>;
  /** Entries in key byte order with gte <= key <= lte (each optional). */
  iterate(bounds: { gte?: Buffer; lte?: Buffer }): AsyncIterable<readonly [Buffer, Buffer]>;
  close(): Promise<void>;
  /** Close and remove all data (used when a store must be rebuilt from scratch). */
  destroy(): Promise<void>;
}

/** How a topology declares a store; the runtime builds one per task. */
export interface StoreSpec<K = unknown, V = unknown> {
  name: string;
  keySerde: SyncSerde<K>;
  valueSerde: SyncSerde<V>;
  /** 'rocksdb' (default) or 'memory'. */
  backend: 'rocksdb' | 'memory';
  /** Changelog topic logging; default true. */
  logged: boolean;
  /** Committed keys kept in memory per task in front of a RocksDB store (0: none); default 1000. */
  cacheSize?: number;
}

export function keyValueStore<K, V>(
  name: string,
  keySerde: SyncSerde<K>,
  valueSerde: SyncSerde<V>,
  opts: { backend?: 'rocksdb' | 'memory'; logged?: boolean; cacheSize?: number } = {},
): StoreSpec<K, V> {
  return { name, keySerde, valueSerde, backend: opts.backend ?? 'rocksdb', logged: opts.logged ?? true, ...(opts.cacheSize === undefined ? {} : { cacheSize: opts.cacheSize }) };
}
