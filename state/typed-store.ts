import type { KeyValue, KeyValueStore } from './store.js';
import type { SyncSerde } from '../runtime/serde.js';
import type { BufferedStore } from './buffered-store.js';

/**
 * The key-value store a processor sees, over the task's buffered store.
 * Responsible for:
 * - turning keys and values into bytes and back with the store's serdes;
 * - range and prefix scans in byte order of the serialized keys, bounds computed on bytes.
 */
export class TypedKeyValueStore<K, V> implements KeyValueStore<K, V> {
  constructor(
    readonly name: string,
    private readonly store: BufferedStore,
    private readonly keySerde: SyncSerde<K>,
    private readonly valueSerde: SyncSerde<V>,
  ) {}

  async get(key: K): Promise<V | undefined> {
    const value = await this.store.get(this.keySerde.serialize(key));
    return value === undefined ? undefined : this.valueSerde.deserialize(value);
  }

  put(key: K, value: V): void {
    this.store.put(this.keySerde.serialize(key), this.valueSerde.serialize(value));
  }

  delete(key: K): void {
    this.store.delete(this.keySerde.serialize(key));
  }

  range(from?: K, to?: K): AsyncIterable<KeyValue<K, V>> {
    const bounds: { gte?: Buffer; lte?: Buffer } = {};
    if (from !== undefined) bounds.gte = this.keySerde.serialize(from);
    if (to !== undefined) bounds.lte = this.keySerde.serialize(to);
    return this.scan(bounds, null);
  }

  prefixScan(prefix: K): AsyncIterable<KeyValue<K, V>>;
  prefixScan<P>(prefix: P, prefixSerde: SyncSerde<P>): AsyncIterable<KeyValue<K, V>>;
  prefixScan<P>(prefix: K | P, prefixSerde?: SyncSerde<P>): AsyncIterable<KeyValue<K, V>> {
    const bytes = prefixSerde ? prefixSerde.serialize(prefix as P) : this.keySerde.serialize(prefix as K);
    const upper = prefixUpperBound(bytes);
    return this.scan(upper ? { gte: bytes, lte: upper } : { gte: bytes }, bytes);
  }

  all(): AsyncIterable<KeyValue<K, V>> {
    return this.scan({}, null);
  }

  private async *scan(bounds: { gte?: Buffer; lte?: Buffer }, prefix: Buffer | null): AsyncGenerator<KeyValue<K, V>> {
    for await (const [key, value] of this.store.iterate(bounds)) {
      // The inclusive upper bound of a prefix scan is the first key past the prefix: stop there.
      if (prefix && !startsWith(key, prefix)) return;
      yield { key: this.keySerde.deserialize(key), value: this.valueSerde.deserialize(value) };
    }
  }
}

/**
 * The smallest key greater than every key starting with `prefix`: the prefix with its last non-0xff byte
 * incremented and the bytes after it dropped. An empty or all-0xff prefix has none.
 */
export function prefixUpperBound(prefix: Buffer): Buffer | null {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i]! !== 0xff) {
      const upper = Buffer.from(prefix.subarray(0, i + 1));
      upper[i] = prefix[i]! + 1;
      return upper;
    }
  }
  return null;
}

function startsWith(key: Buffer, prefix: Buffer): boolean {
  return key.length >= prefix.length && key.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}
