import type { Processor, ProcessorContext, Record } from '../../runtime/processor.js';
import type { KeyValueStore, StoreSpec } from '../../state/store.js';
import { keyValueStore } from '../../state/store.js';
import { Serdes } from '../../runtime/serde.js';
import { WeirError } from '../../runtime/errors.js';
import type { Payment, Reconciliation, Settlement } from '../../schemas/types.js';
import { applyDue, applyPayment, applySettlement, type IgnoredReason, type PaymentState, type ReconcileConfig, type Transition } from './reconcile.js';

/**
 * Reconciles payments against vendor settlements, one paymentId at a time (the rules are in reconcile.ts).
 * Responsible for:
 * - keeping each paymentId's state, and a time-ordered index of when each entry is next due;
 * - firing due entries (deadline → MISSING_SETTLEMENT / UNEXPECTED_SETTLEMENT; retention → forget) whenever
 *   stream time has passed them: before and after every record it handles, and on a stream-time punctuator;
 * - counting the events it could not use.
 *
 * Determinism: a due entry fires as soon as stream time is past it, before any later record is handled, so the
 * results and their order depend only on the input, never on the punctuation interval. That includes the record
 * that moves stream time: a settlement whose eventTime is past its payment's deadline finds the payment already
 * declared MISSING_SETTLEMENT, whatever the interval. The punctuator only makes results appear without waiting for
 * the next record (stream time also moves on duplicates, which the dedupe step drops before they get here).
 *
 * One store, three kinds of keys:
 * - `s:<paymentId>` → PaymentState;
 * - `d:<dueAt as 16 hex digits>:<paymentId>` → paymentId, one per live state (byte order = time order);
 * - `c:<reason>` → how many events were ignored for that reason.
 */
export class ReconciliationProcessor implements Processor<string, Payment | Settlement, string, Reconciliation> {
  private ctx!: ProcessorContext<string, Reconciliation>;
  private store!: KeyValueStore<string, ReconciliationStoreValue>;
  /**
   * Cache of the earliest dueAt in the index: null = the index is empty, undefined = not known (scan).
   * Rebuilt from the store by the first scan; a task that restarts makes a new processor.
   */
  private nextDue: number | null | undefined = undefined;

  constructor(private readonly opts: ReconciliationProcessorOptions) {}

  init(ctx: ProcessorContext<string, Reconciliation>): void {
    this.ctx = ctx;
    this.store = ctx.getStore(this.opts.storeName);
    ctx.schedule(this.opts.punctuationIntervalMs, 'stream-time', (streamTime) => this.fireDue(streamTime));
  }

  async process(record: Record<string, Payment | Settlement>): Promise<void> {
    const streamTime = this.ctx.currentStreamTime();
    // Stream time may have passed deadlines since the last record this processor saw: those come first.
    await this.fireDue(streamTime);
    const topic = this.ctx.recordMetadata()?.topic;
    const paymentId = record.value.paymentId;
    const state = await this.getState(paymentId);
    let transition: Transition;
    if (topic === this.opts.paymentsTopic) transition = applyPayment(state, record.value as Payment, this.opts);
    else if (topic === this.opts.settlementsTopic) transition = applySettlement(state, record.value as Settlement, this.opts);
    else throw new WeirError(`reconciliation got a record from topic '${topic}', expected '${this.opts.paymentsTopic}' or '${this.opts.settlementsTopic}'`);
    await this.apply(state, transition);
    // The record itself may be past its own deadline already (it arrived late): decide it now.
    await this.fireDue(streamTime);
  }

  /** Fire every index entry due before `streamTime`, in (dueAt, paymentId) order. */
  private async fireDue(streamTime: number): Promise<void> {
    for (;;) {
      if (this.nextDue === null || (this.nextDue !== undefined && this.nextDue >= streamTime)) return;
      const due: Array<{ key: string; dueAt: number }> = [];
      let next: number | null = null;
      for await (const { key } of this.store.prefixScan(INDEX_PREFIX)) {
        const dueAt = dueAtOf(key);
        if (dueAt >= streamTime) {
          next = dueAt;
          break;
        }
        due.push({ key, dueAt });
      }
      // Entries apply() writes below lower this again.
      this.nextDue = next;
      if (due.length === 0) return;
      for (const { key, dueAt } of due) {
        const state = await this.getState(key.slice(INDEX_ID_OFFSET));
        if (!state || state.dueAt !== dueAt) {
          // Not reachable through apply(); drop a stray index entry rather than loop on it.
          this.store.delete(key);
          continue;
        }
        await this.apply(state, applyDue(state, this.opts));
      }
      // Purge entries written while firing may already be due: scan again.
    }
  }

  private async apply(prev: PaymentState | undefined, t: Transition): Promise<void> {
    if (t.ignored) await this.count(t.ignored);
    if (t.state === null) {
      if (prev) {
        this.store.delete(stateKey(prev.paymentId));
        this.store.delete(indexKey(prev.dueAt, prev.paymentId));
      }
    } else if (t.state !== prev) {
      const s = t.state;
      this.store.put(stateKey(s.paymentId), s);
      if (!prev || prev.dueAt !== s.dueAt) {
        if (prev) this.store.delete(indexKey(prev.dueAt, prev.paymentId));
        this.store.put(indexKey(s.dueAt, s.paymentId), s.paymentId);
        if (this.nextDue !== undefined) this.nextDue = this.nextDue === null ? s.dueAt : Math.min(this.nextDue, s.dueAt);
      }
    }
    for (const result of t.results) {
      await this.ctx.forward({ key: result.paymentId, value: result, timestamp: result.decidedAt });
    }
  }

  private async getState(paymentId: string): Promise<PaymentState | undefined> {
    return (await this.store.get(stateKey(paymentId))) as PaymentState | undefined;
  }

  private async count(reason: IgnoredReason): Promise<void> {
    const key = counterKey(reason);
    this.store.put(key, (((await this.store.get(key)) as number | undefined) ?? 0) + 1);
    this.ctx.count(reason);
  }
}

export interface ReconciliationProcessorOptions extends ReconcileConfig {
  storeName: string;
  /** The input topic whose records are payments. */
  paymentsTopic: string;
  /** The input topic whose records are settlements. */
  settlementsTopic: string;
  /** Stream-time punctuation interval (ms); results do not depend on it. */
  punctuationIntervalMs: number;
}

export type ReconciliationStoreValue = PaymentState | string | number;

const INDEX_PREFIX = 'd:';
/** 'd:' + 16 hex digits + ':' */
const INDEX_ID_OFFSET = 19;

function stateKey(paymentId: string): string {
  return `s:${paymentId}`;
}

function indexKey(dueAt: number, paymentId: string): string {
  return `${INDEX_PREFIX}${dueAt.toString(16).padStart(16, '0')}:${paymentId}`;
}

function dueAtOf(key: string): number {
  return parseInt(key.slice(INDEX_PREFIX.length, INDEX_ID_OFFSET - 1), 16);
}

function counterKey(reason: IgnoredReason): string {
  return `c:${reason}`;
}

/** The store a reconciliation processor needs. */
export function reconciliationStore(name: string, backend: 'rocksdb' | 'memory' = 'rocksdb'): StoreSpec<string, ReconciliationStoreValue> {
  return keyValueStore(name, Serdes.string(), Serdes.json<ReconciliationStoreValue>(), { backend });
}

/** How many events a reconciliation store has ignored, by reason (exact). */
export async function ignoredCounted(store: KeyValueStore<string, ReconciliationStoreValue>): Promise<{ [R in IgnoredReason]: number }> {
  const read = async (r: IgnoredReason) => ((await store.get(counterKey(r))) as number | undefined) ?? 0;
  return { 'late-duplicate': await read('late-duplicate'), 'extra-payment': await read('extra-payment'), 'extra-settlement': await read('extra-settlement') };
}
