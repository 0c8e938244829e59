import type { KeyValueStore } from '../state/store.js';

/**
 * A processor's own stream time: the highest record timestamp it has processed, kept under one key of one of its
 * stores, so it is logged and restored with the rest of its state.
 *
 * The task's stream time starts again from the first record after a restart, and a cleanup punctuator fires at
 * points that depend on where restarts fell. A retention rule that is decided against this value instead — "is this
 * remembered thing older than the window?" at lookup time, not "has the cleanup run yet?" — decides the same way in a
 * live run, after a crash and in a replay. Cleanup then only removes what lookups already treat as gone.
 *
 * One instance per processor instance: a restarted task builds new processors, so the cached value never outlives
 * an aborted transaction.
 */
export class StoredStreamTime {
  private current: number | undefined;

  constructor(
    private readonly store: KeyValueStore<string, unknown>,
    private readonly key: string,
  ) {}

  /** Moves stream time to `timestamp` if that is later; returns stream time including this record. */
  async advance(timestamp: number): Promise<number> {
    const now = await this.now();
    if (timestamp <= now) return now;
    this.current = timestamp;
    this.store.put(this.key, timestamp);
    return timestamp;
  }

  /** Stream time so far; -1 before the first record. */
  async now(): Promise<number> {
    if (this.current === undefined) {
      const stored = await this.store.get(this.key);
      this.current = typeof stored === 'number' ? stored : -1;
    }
    return this.current;
  }
}
