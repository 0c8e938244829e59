import type { ByteChange } from './store.js';
import type { BufferedStore } from './buffered-store.js';
import { WeirError } from '../runtime/errors.js';
import type { RawMessage } from '../runtime/partition-reader.js';

/** Anything that can read a partition to its end: the Kafka partition reader, or the test driver's in-memory log. */
export interface LogReader {
  read(
    topic: string,
    partition: number,
    fromOffset: number | null,
    onBatch: (messages: RawMessage[], nextOffset: number) => Promise<void> | void,
    opts?: { untilOffset?: number; onProgress?: (next: number, end: number) => void },
  ): Promise<number>;
}

export interface RestoreProgress {
  store: string;
  restored: number;
  next: number;
  end: number;
}

/**
 * Brings one store up to its changelog's end.
 * Responsible for:
 * - reading from the offset the store's data reflects (or the log start when it has none);
 * - applying each fetched batch together with the offset it reaches, so a crash mid-restore resumes, not repeats;
 * - starting over from an empty store when the stored offset is beyond the changelog (a recreated topic), and at a
 *   replay's reset marker.
 */
export class ChangelogReader {
  constructor(private readonly log: LogReader) {}

  async restore(
    storeName: string,
    store: BufferedStore,
    startOffset: number | null,
    topic: string,
    partition: number,
    wipe: () => Promise<void>,
    onProgress?: (p: RestoreProgress) => void,
  ): Promise<number> {
    let restored = 0;
    const apply = async (messages: RawMessage[], next: number) => {
      // A replay marker means: the state before it is void. Start from nothing at the last marker of the batch.
      let from = 0;
      for (let i = messages.length - 1; i >= 0; i--) {
        if (isResetMarker(messages[i]!)) {
          from = i + 1;
          await wipe();
          break;
        }
      }
      const changes: ByteChange[] = [];
      for (let i = from; i < messages.length; i++) {
        const m = messages[i]!;
        if (m.key === null) continue;
        changes.push([m.key, m.value]);
      }
      restored += changes.length;
      await store.restore(changes, next);
    };
    const progress = (next: number, end: number) => onProgress?.({ store: storeName, restored, next, end });
    try {
      return await this.log.read(topic, partition, startOffset, apply, { onProgress: progress });
    } catch (err) {
      if (startOffset === null || !(err instanceof WeirError) || !/out of range/.test(err.message)) throw err;
      // The store is ahead of its changelog: the topic was recreated. Rebuild from nothing.
      await wipe();
      return await this.log.read(topic, partition, null, apply, { onProgress: progress });
    }
  }
}

/**
 * The changelog record a replay writes before the rebuilt state: a restore that meets it drops everything before it.
 * Compacted topics need a key; the header is what marks it.
 */
export const RESET_MARKER_HEADER = 'weir.reset';
export const RESET_MARKER_KEY = Buffer.from('\u0000weir.reset');

function isResetMarker(m: RawMessage): boolean {
  return m.headers?.[RESET_MARKER_HEADER] !== undefined;
}
