import type { ByteChange, StoreBackend } from './store.js';
import { WeirError } from '../runtime/errors.js';
import { lowerBound } from './sorted-keys.js';

/**
 * A store transaction's life: STARTED (writes accepted) → PREPARED (changelog records handed out,
 * writes refused) → COMPLETE (landed in the backend; the next transaction starts at once), or FAILED
 * (the backend write failed; only `abort()` leaves it).
 */
export type StoreTransactionState = 'STARTED' | 'PREPARED' | 'COMPLETE' | 'FAILED';

type Operation = 'get' | 'put' | 'delete' | 'iterate' | 'prepare' | 'complete' | 'restore';

interface DirtyEntry {
  key: Buffer;
  /** null: a pending delete. */
  value: Buffer | null;
}

/**
 * The per-task write buffer in front of one store's backend: the store's part of the commit path.
 * Responsible for:
 * - holding the task's uncommitted writes (last write per key wins) and letting reads and scans see them;
 * - handing the commit those writes as changelog records (prepare), then landing them in the backend
 *   together with the changelog offset (complete), or dropping them (abort);
 * - refusing calls that do not fit the transaction's state, so a commit cannot be half-applied unnoticed;
 * - applying changelog records during restore, straight to the backend;
 * - an optional read cache of committed entries (least recently used, `cacheSize` keys; the RocksDB stores have one):
 *   a get after a commit is answered from memory instead of a native read. It holds only what the backend holds
 *   (filled by committed writes and by reads), so scans, which read the backend, agree with it.
 *
 * The store takes ownership of the buffers given to `put`; they must not be changed afterwards.
 */
export class BufferedStore {
  private readonly dirty = new Map<string, DirtyEntry>();
  /** the keys of `dirty` in byte order (latin1 strings compare like their bytes), so a scan finds its range at once */
  private dirtyKeys: string[] = [];
  private prepared: ByteChange[] | null = null;
  private txState: StoreTransactionState = 'STARTED';
  /** committed value per key (null: absent), in use order, oldest first */
  private readonly cache = new Map<string, Buffer | null>();
  /** bumped whenever the backend changes, so a read that started before does not fill the cache with an old value */
  private backendVersion = 0;

  constructor(
    readonly name: string,
    readonly backend: StoreBackend,
    private readonly cacheSize = 0,
  ) {}

  get state(): StoreTransactionState {
    return this.txState;
  }

  /** How many keys have uncommitted changes. */
  get dirtyCount(): number {
    return this.dirty.size;
  }

  async get(key: Buffer): Promise<Buffer | undefined> {
    this.check('get');
    const k = key.toString('latin1');
    const entry = this.dirty.get(k);
    if (entry) return entry.value ?? undefined;
    if (this.cacheSize === 0) return this.backend.get(key);
    const cached = this.cache.get(k);
    if (cached !== undefined) {
      this.remember(k, cached);
      return cached ?? undefined;
    }
    const version = this.backendVersion;
    const value = await this.backend.get(key);
    if (version === this.backendVersion) this.remember(k, value ?? null);
    return value;
  }

  put(key: Buffer, value: Buffer): void {
    this.check('put');
    this.setDirty(key, value);
  }

  delete(key: Buffer): void {
    this.check('delete');
    this.setDirty(key, null);
  }

  private setDirty(key: Buffer, value: Buffer | null): void {
    const k = key.toString('latin1');
    if (!this.dirty.has(k)) this.dirtyKeys.splice(lowerBound(this.dirtyKeys, k), 0, k);
    this.dirty.set(k, { key, value });
  }

  private clearDirty(): void {
    this.dirty.clear();
    this.dirtyKeys = [];
  }

  /**
   * Entries with gte <= key <= lte in key byte order: the backend's committed entries merged with the
   * uncommitted ones as they stand when the scan starts (a pending put overrides, a pending delete hides).
   */
  async *iterate(bounds: { gte?: Buffer; lte?: Buffer }): AsyncGenerator<readonly [Buffer, Buffer]> {
    this.check('iterate');
    const gte = bounds.gte?.toString('latin1');
    const lte = bounds.lte?.toString('latin1');
    // the uncommitted entries in range, in key order, as they stand when the scan starts
    const pending: [string, DirtyEntry][] = [];
    for (let j = gte === undefined ? 0 : lowerBound(this.dirtyKeys, gte); j < this.dirtyKeys.length; j++) {
      const k = this.dirtyKeys[j]!;
      if (lte !== undefined && k > lte) break;
      pending.push([k, this.dirty.get(k)!]);
    }

    let i = 0;
    for await (const [key, value] of this.backend.iterate(bounds)) {
      let cmp = -1;
      while (i < pending.length && (cmp = Buffer.compare(pending[i]![1].key, key)) < 0) {
        const p = pending[i++]![1];
        if (p.value !== null) yield [p.key, p.value];
      }
      if (i < pending.length && cmp === 0) {
        const p = pending[i++]![1];
        if (p.value !== null) yield [p.key, p.value];
        continue;
      }
      yield [key, value];
    }
    for (; i < pending.length; i++) {
      const p = pending[i]![1];
      if (p.value !== null) yield [p.key, p.value];
    }
  }

  /** Commit step: STARTED → PREPARED. Returns the uncommitted changes, one per key, for the changelog. */
  prepare(): ByteChange[] {
    this.check('prepare');
    this.prepared = Array.from(this.dirty.values(), (e): ByteChange => [e.key, e.value]);
    this.txState = 'PREPARED';
    return this.prepared;
  }

  /**
   * Commit step: PREPARED → COMPLETE. Lands the prepared changes and `changelogOffset` (the next changelog
   * offset they reflect; null leaves the stored one) in the backend atomically, then starts the next
   * transaction. A failed write leaves the transaction FAILED and rethrows.
   */
  async complete(changelogOffset: number | null): Promise<void> {
    this.check('complete');
    try {
      await this.backend.write(this.prepared ?? [], changelogOffset);
    } catch (err) {
      this.txState = 'FAILED';
      throw err;
    }
    this.txState = 'COMPLETE';
    this.backendVersion++;
    if (this.cacheSize > 0) for (const [k, e] of this.dirty) this.remember(k, e.value);
    this.clearDirty();
    this.prepared = null;
    this.txState = 'STARTED';
  }

  /** Drops every uncommitted change, in any state; the next transaction starts. */
  abort(): void {
    this.clearDirty();
    this.prepared = null;
    this.txState = 'STARTED';
  }

  /** Drops every uncommitted change and the read cache: the backend is about to be wiped. */
  reset(): void {
    this.abort();
    this.backendVersion++;
    this.cache.clear();
  }

  /** Applies changelog records during restore; `nextOffset` is the changelog offset after them. */
  async restore(changes: ByteChange[], nextOffset: number): Promise<void> {
    this.check('restore');
    if (this.dirty.size > 0) {
      throw new WeirError(`Illegal state ${this.txState} with ${this.dirty.size} uncommitted changes while restore on store '${this.name}'`);
    }
    this.backendVersion++;
    if (this.cacheSize > 0) for (const [key] of changes) this.cache.delete(key.toString('latin1'));
    await this.backend.write(changes, nextOffset);
  }

  private remember(k: string, value: Buffer | null): void {
    this.cache.delete(k);
    this.cache.set(k, value);
    if (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
  }

  private check(op: Operation): void {
    if (!allowed(this.txState, op)) {
      throw new WeirError(`Illegal state ${this.txState} while ${op} on store '${this.name}'`);
    }
  }
}

function allowed(state: StoreTransactionState, op: Operation): boolean {
  switch (state) {
    case 'STARTED':
      return op !== 'complete';
    case 'PREPARED':
      // Reads stay consistent (the buffer is kept until the write lands); nothing may change it.
      return op === 'complete' || op === 'get' || op === 'iterate';
    case 'COMPLETE':
      // Transient inside complete(): nothing runs between it and the next STARTED.
      return false;
    case 'FAILED':
      return false;
    default: {
      const unknown: never = state;
      throw new WeirError(`unknown store transaction state ${String(unknown)}`);
    }
  }
}
