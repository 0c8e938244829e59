import type { StoreManager } from '../state/store-manager.js';
import type { RecordCollector } from './record-collector.js';
import { isFencedError, tpKey, type TaskProducer, type TopicPartitionOffset } from './task-producer.js';
import { TaskCorruptedError, TaskMigratedError } from './errors.js';

export interface CheckpointParts {
  taskId: string;
  stores: StoreManager;
  collector: RecordCollector;
  producer: TaskProducer;
  /** The next offset to consume, per input partition this task has advanced. */
  offsets: TopicPartitionOffset[];
}

/**
 * The one place a task's work becomes durable. The steps, in order:
 *  1. prepare the stores: each logged store hands over one changelog record per changed key;
 *  2. queue those changelog records behind the task's pending output records;
 *  3. send everything (inside the task's transaction under exactly-once) and learn the changelog offsets;
 *  4. commit the input offsets: in the same transaction (exactly-once), or by the consumer after the sends
 *     were acknowledged (at-least-once);
 *  5. complete the stores: write the changes and the changelog offset they reach in one RocksDB WriteBatch.
 * A failure before 4 ends aborts the transaction and drops the uncommitted writes: a fenced producer is a
 * TaskMigratedError (close as a zombie), anything else a TaskCorruptedError (restore and resume from the committed offsets).
 * A failure in 5 leaves RocksDB behind its changelog, which the next restore catches up: also TaskCorruptedError.
 */
export async function commitCheckpoint(parts: CheckpointParts): Promise<void> {
  const { taskId, stores, collector, producer, offsets } = parts;
  const now = Date.now();
  try {
    // 1.
    const changelogs = stores.prepare();
    // 2.
    for (const batch of changelogs) {
      for (const [key, value] of batch.changes) collector.sendChangelog(batch.topic, batch.partition, key, value, now);
    }
    // 3.
    const sent = await producer.send(collector.drain());
    // 4.
    await producer.commit(offsets);
    // 5.
    const nextOffsets = new Map<string, number>();
    for (const batch of changelogs) {
      const next = sent.get(tpKey(batch.topic, batch.partition));
      if (next !== undefined) nextOffsets.set(batch.topic, next);
    }
    try {
      await stores.complete(nextOffsets);
    } catch (err) {
      stores.abort();
      throw new TaskCorruptedError(taskId, 'the committed changes could not be written to the local store', err);
    }
  } catch (err) {
    if (err instanceof TaskCorruptedError) throw err;
    throw await abortTransaction(parts, 'the commit', err);
  }
}

/**
 * A send of the open transaction failed (`doing`: the commit, or a send of buffered outputs before it): drop the
 * pending outputs and the stores' uncommitted writes, abort the transaction, and return the error to throw —
 * TaskMigratedError when the producer was fenced (close as a zombie), TaskCorruptedError otherwise (restore and
 * resume from the committed offsets).
 */
export async function abortTransaction(parts: Omit<CheckpointParts, 'offsets'>, doing: string, err: unknown): Promise<Error> {
  parts.collector.clear();
  parts.stores.abort();
  await parts.producer.abort().catch(() => undefined);
  if (isFencedError(err)) return new TaskMigratedError(parts.taskId, err);
  return new TaskCorruptedError(parts.taskId, `${doing} failed (${(err as Error).message})`, err);
}
