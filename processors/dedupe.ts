import type { Processor, ProcessorContext, Record } from '../runtime/processor.js';
import type { KeyValueStore, StoreSpec } from '../state/store.js';
import { keyValueStore } from '../state/store.js';
import { Serdes } from '../runtime/serde.js';
import { StoredStreamTime } from './stored-stream-time.js';

/**
 * Drops events whose id was seen before, within a retention window of stream time.
 * Responsible for:
 * - forwarding the first record of each event id, unchanged;
 * - counting duplicates exactly (the count lives in the store, so it survives restarts and is never doubled);
 * - remembering each id for `retentionMs` of stream time from when it was first seen: an id seen at stream time `s`
 *   is a duplicate while stream time is at most `s + retentionMs`. The rule is decided at lookup, against the
 *   processor's own stored stream time (`StoredStreamTime`), so a live run, a run with crashes and a replay drop
 *   exactly the same records whatever the cleanup interval;
 * - deleting the ids that rule already treats as forgotten, on a stream-time punctuator (it only bounds the store).
 * One store holds four kinds of keys: `i:<id>` → stream time when first seen, `x:<that time as 16 hex digits>:<id>`
 * (the expiry index, in time order), `c:duplicates` → the count and `t:stream-time` → the stream time.
 */
export class DedupeProcessor<K, V> implements Processor<K, V, K, V> {
  private ctx!: ProcessorContext<K, V>;
  private store!: KeyValueStore<string, number>;
  private streamTime!: StoredStreamTime;

  constructor(private readonly opts: DedupeOptions<K, V>) {}

  init(ctx: ProcessorContext<K, V>): void {
    this.ctx = ctx;
    this.store = ctx.getStore(this.opts.storeName);
    this.streamTime = new StoredStreamTime(this.store, STREAM_TIME_KEY);
    ctx.schedule(this.opts.cleanupIntervalMs ?? 60_000, 'stream-time', () => this.expire());
  }

  async process(record: Record<K, V>): Promise<void> {
    const id = this.opts.idOf(record);
    const now = await this.streamTime.advance(record.timestamp);
    const seenAt = await this.store.get(`i:${id}`);
    if (seenAt !== undefined && seenAt >= now - this.opts.retentionMs) {
      this.store.put(COUNT_KEY, ((await this.store.get(COUNT_KEY)) ?? 0) + 1);
      this.ctx.count('duplicates');
      this.opts.onDuplicate?.(id, record);
      return;
    }
    // Forgotten by the rule but not yet cleaned up: its old index entry must not delete the new sighting later.
    if (seenAt !== undefined) this.store.delete(expiryKey(seenAt, id));
    this.store.put(`i:${id}`, now);
    this.store.put(expiryKey(now, id), now);
    await this.ctx.forward(record);
  }

  private async expire(): Promise<void> {
    const cutoff = (await this.streamTime.now()) - this.opts.retentionMs;
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
const STREAM_TIME_KEY = 't:stream-time';

function expiryKey(timestamp: number, id: string): string {
  return `x:${Math.max(0, timestamp).toString(16).padStart(16, '0')}:${id}`;
}

export interface DedupeOptions<K, V> {
  storeName: string;
  idOf: (record: Record<K, V>) => string;
  /** How long (stream time, from its first sighting) an id is remembered. */
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
