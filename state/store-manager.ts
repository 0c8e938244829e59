import type { ByteChange, KeyValueStore, StoreBackend, StoreSpec } from './store.js';
import { BufferedStore } from './buffered-store.js';
import { TypedKeyValueStore } from './typed-store.js';
import { MemoryBackend } from './memory-backend.js';
import { RocksDbBackend } from './rocksdb-backend.js';
import type { StateDirectory } from './state-directory.js';
import { ChangelogReader, type LogReader, type RestoreProgress } from './changelog-reader.js';

interface ManagedStore {
  spec: StoreSpec;
  backend: StoreBackend;
  buffered: BufferedStore;
  typed: TypedKeyValueStore<unknown, unknown>;
  changelogTopic: string | null;
}

/** The changelog records a commit must send for one store. */
export interface ChangelogBatch {
  store: string;
  topic: string;
  partition: number;
  changes: ByteChange[];
}

/** Committed keys a RocksDB store keeps in memory per task unless its spec says otherwise. */
export const DEFAULT_CACHE_SIZE = 1000;

export function changelogTopicName(applicationId: string, storeName: string): string {
  return `${applicationId}-${storeName}-changelog`;
}

/**
 * The state of one task: the single source of truth for its stores and the changelog offsets they reflect.
 * Responsible for:
 * - opening one backend per store (RocksDB under the task's directory, or memory);
 * - restoring each logged store from its changelog before the task processes;
 * - handing the commit its changelog records (prepare) and landing committed changes with their offsets (complete);
 * - dropping uncommitted changes (abort) and closing or wiping the stores.
 */
export class StoreManager {
  private readonly stores = new Map<string, ManagedStore>();

  constructor(
    private readonly opts: {
      applicationId: string;
      taskId: string;
      partition: number;
      specs: readonly StoreSpec[];
      stateDir: StateDirectory | null;
    },
  ) {}

  async open(): Promise<void> {
    for (const spec of this.opts.specs) {
      const backend: StoreBackend =
        spec.backend === 'rocksdb' && this.opts.stateDir
          ? new RocksDbBackend(this.opts.stateDir.storeDir(this.opts.taskId, spec.name))
          : new MemoryBackend();
      await backend.open();
      // a RocksDB read is a native call; the memory backend is a Map already
      const buffered = new BufferedStore(spec.name, backend, backend instanceof RocksDbBackend ? (spec.cacheSize ?? DEFAULT_CACHE_SIZE) : 0);
      this.stores.set(spec.name, {
        spec,
        backend,
        buffered,
        typed: new TypedKeyValueStore(spec.name, buffered, spec.keySerde, spec.valueSerde),
        changelogTopic: spec.logged ? changelogTopicName(this.opts.applicationId, spec.name) : null,
      });
    }
  }

  has(name: string): boolean {
    return this.stores.has(name);
  }

  store<K, V>(name: string): KeyValueStore<K, V> {
    const s = this.stores.get(name);
    if (!s) throw new Error(`task ${this.opts.taskId} has no state store '${name}'`);
    return s.typed as unknown as KeyValueStore<K, V>;
  }

  async restore(log: LogReader, onProgress?: (p: RestoreProgress) => void): Promise<void> {
    const reader = new ChangelogReader(log);
    for (const s of this.stores.values()) {
      if (!s.changelogTopic) continue;
      const from = await s.backend.changelogOffset();
      await reader.restore(s.spec.name, s.buffered, from, s.changelogTopic, this.opts.partition, () => this.wipeStore(s), onProgress);
    }
  }

  get dirty(): boolean {
    for (const s of this.stores.values()) if (s.buffered.dirtyCount > 0) return true;
    return false;
  }

  /** Commit step 2: the changelog records of every logged store (an unlogged store still moves to PREPARED). */
  prepare(): ChangelogBatch[] {
    const batches: ChangelogBatch[] = [];
    for (const s of this.stores.values()) {
      const changes = s.buffered.prepare();
      if (s.changelogTopic && changes.length > 0) {
        batches.push({ store: s.spec.name, topic: s.changelogTopic, partition: this.opts.partition, changes });
      }
    }
    return batches;
  }

  /** Commit step 5: land the committed changes with the changelog offset each store now reflects. */
  async complete(nextOffsets: ReadonlyMap<string, number>): Promise<void> {
    for (const s of this.stores.values()) {
      const next = s.changelogTopic ? nextOffsets.get(s.changelogTopic) ?? null : null;
      await s.buffered.complete(next);
    }
  }

  abort(): void {
    for (const s of this.stores.values()) s.buffered.abort();
  }

  async close(): Promise<void> {
    for (const s of this.stores.values()) await s.backend.close();
    this.stores.clear();
  }

  /** Remove every store's data (the next restore rebuilds it from the changelog). */
  async wipe(): Promise<void> {
    for (const s of this.stores.values()) await this.wipeStore(s);
  }

  private async wipeStore(s: ManagedStore): Promise<void> {
    s.buffered.reset();
    await s.backend.destroy();
    await s.backend.open();
  }
}
