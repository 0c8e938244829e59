import type { Processor, ProcessorContext, Record } from '../runtime/processor.js';
import type { KeyValueStore, StoreSpec } from '../state/store.js';
import { keyValueStore } from '../state/store.js';
import { Serdes } from '../runtime/serde.js';

/**
 * Drops events whose id was seen before, within a retention window of event time.
 * Responsible for:
 * - forwarding the first record of each event id, unchanged;
 * - counting duplicates exactly (the count lives in the store, so it survives restarts and is never doubled);
 * - forgetting ids older than the retention window, on a stream-time punctuator (deterministic on replay).
 * One store holds three kinds of keys: `i:<id>` → event time, `x:<time as 16 hex digits>:<id>` (the expiry index,
 * in time order), and `c:duplicates` → the count.
 */
export class DedupeProcessor<K, V> implements Processor<K, V, K, V> {
  private ctx!: ProcessorContext<K, V>;
  private store!: KeyValueStore<string, number>;

  constructor(private readonly opts: DedupeOptions<K, V>) {}

  init(ctx: ProcessorContext<K, V>): void {
    this.ctx = ctx;
    this.store = ctx.getStore(this.opts.storeName);
    ctx.schedule(this.opts.cleanupIntervalMs ?? 60_000, 'stream-time', (streamTime) => this.expire(streamTime));
  }

  async process(record: Record<K, V>): Promise<void> {
    const id = this.opts.idOf(record);
    const seen = await this.store.get(`i:${id}`);
    if (seen !== undefined) {
      this.store.put(COUNT_KEY, ((await this.store.get(COUNT_KEY)) ?? 0) + 1);
      this.ctx.count('duplicates');
      this.opts.onDuplicate?.(id, record);
      return;
    }
    this.store.put(`i:${id}`, record.timestamp);
    this.store.put(expiryKey(record.timestamp, id), record.timestamp);
    await this.ctx.forward(record);
  }

  private async expire(streamTime: number): Promise<void> {
    const cutoff = streamTime - this.opts.retentionMs;
    if (cutoff <= 0) return;
    const expired: string[] = [];
    for await (const { key } of this.store.range('x:', expiryKey(cutoff - 1, '\uffff'))) expired.push(key);
    for (const key of expired) {
      this.store.delete(key);
      this.store.delete(`i:${key.slice(19)}`);
    }
  }
}

const COUNT_KEY = 'c:duplicates';

function expiryKey(timestamp: number, id: string): string {
  return `x:${Math.max(0, timestamp).toString(16).padStart(16, '0')}:${id}`;
}

export interface DedupeOptions<K, V> {
  storeName: string;
  idOf: (record: Record<K, V>) => string;
  /** How long (event time) an id is remembered. */
  retentionMs: number;
  cleanupIntervalMs?: number;
  onDuplicate?: (id: string, record: Record<K, V>) => void;
}

/** The store a dedupe processor needs. */
export function dedupeStore(name: string, backend: 'rocksdb' | 'memory' = 'rocksdb'): StoreSpec<string, number> {
  return keyValueStore(name, Serdes.string(), Serdes.json<number>(), { backend });
}

/** How many duplicates a dedupe store has dropped (exact). */
export async function duplicatesCounted(store: KeyValueStore<string, number>): Promise<number> {
  return (await store.get(COUNT_KEY)) ?? 0;
}
