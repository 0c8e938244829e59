import type { ByteChange, StoreBackend } from './store.js';
import { WeirError } from '../runtime/errors.js';
import { lowerBound } from './sorted-keys.js';

/**
 * A store backend held in process memory, for tests and unpersisted stores.
 * Responsible for:
 * - keeping committed entries and the changelog offset they reflect (lost with the process, so it restores from 0);
 * - iterating in key byte order without re-sorting everything on every scan;
 * - handing out copies, so callers cannot change committed bytes behind its back (as with RocksDB).
 *
 * Keys live in a Map under their latin1 string: latin1 maps each byte to one UTF-16 code unit, so
 * comparing those strings is comparing the bytes (Buffer.compare order). The sorted key array is
 * brought up to date lazily at scan time: keys added since the last scan are sorted and merged in,
 * deleted keys are dropped. Writes only arrive at commit, so that is at most once per commit.
 */
export class MemoryBackend implements StoreBackend {
  readonly kind = 'memory' as const;
  readonly persistent = false;

  private readonly entries = new Map<string, Buffer>();
  /** Keys in byte order as of the last scan; may name keys deleted since. */
  private sorted: string[] = [];
  /** Keys added since `sorted` was last brought up to date. */
  private added: string[] = [];
  private deletedSinceSort = 0;
  private offset: number | null = null;
  private isOpen = false;

  async open(): Promise<void> {
    this.isOpen = true;
  }

  async get(key: Buffer): Promise<Buffer | undefined> {
    this.assertOpen('get');
    const value = this.entries.get(key.toString('latin1'));
    return value === undefined ? undefined : Buffer.from(value);
  }

  async write(changes: readonly ByteChange[], changelogOffset: number | null): Promise<void> {
    this.assertOpen('write');
    for (const [key, value] of changes) {
      const k = key.toString('latin1');
      if (value === null) {
        if (this.entries.delete(k)) this.deletedSinceSort++;
      } else {
        if (!this.entries.has(k)) this.added.push(k);
        this.entries.set(k, Buffer.from(value));
      }
    }
    if (changelogOffset !== null) this.offset = changelogOffset;
  }

  async changelogOffset(): Promise<number | null> {
    this.assertOpen('changelogOffset');
    return this.offset;
  }

  async *iterate(bounds: { gte?: Buffer; lte?: Buffer }): AsyncGenerator<readonly [Buffer, Buffer]> {
    this.assertOpen('iterate');
    const keys = this.sortedKeys();
    const gte = bounds.gte?.toString('latin1');
    const lte = bounds.lte?.toString('latin1');
    let i = gte === undefined ? 0 : lowerBound(keys, gte);
    // Snapshot the range now: a commit landing while the consumer awaits must not shift what it sees.
    const snapshot: [Buffer, Buffer][] = [];
    for (; i < keys.length; i++) {
      const k = keys[i]!;
      if (lte !== undefined && k > lte) break;
      const value = this.entries.get(k);
      if (value !== undefined) snapshot.push([Buffer.from(k, 'latin1'), Buffer.from(value)]);
    }
    yield* snapshot;
  }

  async close(): Promise<void> {
    // The data stays: closing and reopening within the process keeps it, like a directory on disk would.
    this.isOpen = false;
  }

  async destroy(): Promise<void> {
    this.isOpen = false;
    this.entries.clear();
    this.sorted = [];
    this.added = [];
    this.deletedSinceSort = 0;
    this.offset = null;
  }

  private sortedKeys(): string[] {
    if (this.added.length === 0 && this.deletedSinceSort === 0) return this.sorted;
    // Default sort compares UTF-16 code units, which for latin1 strings is byte order.
    const added = this.added.sort();
    const merged: string[] = [];
    let a = 0;
    let s = 0;
    while (a < added.length || s < this.sorted.length) {
      const next = s >= this.sorted.length || (a < added.length && added[a]! < this.sorted[s]!) ? added[a++]! : this.sorted[s++]!;
      // A key deleted and re-added since the last sort appears in both lists; keep one.
      if (this.entries.has(next) && merged[merged.length - 1] !== next) merged.push(next);
    }
    this.sorted = merged;
    this.added = [];
    this.deletedSinceSort = 0;
    return merged;
  }

  private assertOpen(op: string): void {
    if (!this.isOpen) throw new WeirError(`in-memory store is not open (${op})`);
  }
}
