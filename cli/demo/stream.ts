/**
 * The mixed stream the main job sends: the seeded scenario generators of cli/generators for the three applications,
 * interleaved, with duplicates (a producer's retries: same eventId) and malformed records (bytes that are not Avro,
 * truncated Avro, and values that fail validation), produced through the Avro serdes with the Java client's
 * partitioning. It remembers what it sent, so the summary can check the results against it.
 */
import type { Kafka, Message, Producer } from 'kafkajs';
import { partitionForKey } from '../../runtime/partitioner.js';
import type { ApplicationName, SerdeFor } from '../../topologies/index.js';
import type { Payment, Settlement, TradeEvent } from '../../schemas/types.js';
import { generateScenario, type ScenarioRecord } from '../generators/scenarios.js';
import { generatePayments } from '../generators/payments.js';
import { prng } from '../generators/routing.js';
import type { RoutingInput } from './recompute/routing.js';
import type { PaymentsInput } from './recompute/payments.js';
import { checkInterrupted } from './environment.js';
import { APP_NAMES } from './plan.js';

export interface DemoRecord extends ScenarioRecord {
  app: ApplicationName;
}

export interface AppStreamStats {
  /** records sent (events, duplicates and malformed) */
  records: number;
  events: number;
  duplicates: number;
  malformed: number;
  /** of the malformed: bytes that are not (complete) Avro */
  undecodable: number;
}

export interface DemoStream {
  /** in sending order, the three applications interleaved */
  records: DemoRecord[];
  stats: Record<ApplicationName, AppStreamStats>;
  /** eventIds of the decodable malformed records (they fail validation) */
  invalidEventIds: Set<string>;
  /** the valid records, each eventId once, in sending order per application */
  valid: { routing: RoutingInput[]; trades: TradeEvent[]; payments: PaymentsInput[] };
}

export interface StreamOptions {
  /** records per application */
  count: number;
  seed: number;
  /** share of re-sent events */
  duplicates: number;
  /** share of malformed records */
  malformed: number;
  now?: number;
}

export function generateDemoStream(opts: StreamOptions): DemoStream {
  const perApp = new Map<ApplicationName, DemoRecord[]>();
  const now = opts.now ?? Date.now();
  for (const [i, app] of APP_NAMES.entries()) {
    const seed = (opts.seed + i * 7919) >>> 0;
    const records: DemoRecord[] = [];
    const gen =
      app === 'payments'
        ? paymentsScenario({ ...opts, seed, now })
        : generateScenario(app, { count: opts.count, seed, duplicates: opts.duplicates, malformed: opts.malformed, now });
    for (const r of gen) records.push({ ...r, app });
    perApp.set(app, records);
  }
  // Interleave in proportion, so the three applications progress together.
  const records: DemoRecord[] = [];
  const next = new Map<ApplicationName, number>(APP_NAMES.map((a) => [a, 0]));
  const total = APP_NAMES.reduce((n, a) => n + perApp.get(a)!.length, 0);
  while (records.length < total) {
    let best: ApplicationName | undefined;
    let bestShare = Infinity;
    for (const a of APP_NAMES) {
      const list = perApp.get(a)!;
      const i = next.get(a)!;
      if (i >= list.length) continue;
      const share = i / list.length;
      if (share < bestShare) [best, bestShare] = [a, share];
    }
    const i = next.get(best!)!;
    records.push(perApp.get(best!)![i]!);
    next.set(best!, i + 1);
  }

  const stats = Object.fromEntries(APP_NAMES.map((a) => [a, { records: 0, events: 0, duplicates: 0, malformed: 0, undecodable: 0 }])) as Record<ApplicationName, AppStreamStats>;
  const invalidEventIds = new Set<string>();
  const valid: DemoStream['valid'] = { routing: [], trades: [], payments: [] };
  for (const r of records) {
    const s = stats[r.app];
    s.records++;
    if (r.kind === 'duplicate') s.duplicates++;
    else if (r.kind === 'malformed') {
      s.malformed++;
      if (r.corrupt) s.undecodable++;
      else invalidEventIds.add((r.value as { eventId: string }).eventId);
    } else {
      s.events++;
      addValid(valid, r);
    }
  }
  return { records, stats, invalidEventIds, valid };
}

const PAYMENTS_DEADLINE_MS = 48 * 3_600_000;

/**
 * Payments and settlements for about `count` records: whole paymentIds of the seeded payments generator (a payment
 * and its settlement stay together, so the stream does not end with settlements cut off), one every two minutes of
 * event time, ending at `now`; malformed records added at the share asked for, each before a valid record.
 * (generateScenario('payments') cuts its stream after `count` records in arrival order; with settlements arriving up
 * to a day and a half after their payment, that leaves about half of the payments of a small stream unsettled.)
 */
function paymentsScenario(opts: StreamOptions & { now: number }): ScenarioRecord[] {
  const gen = generatePayments({ seed: opts.seed, count: Math.ceil(opts.count / 1.5), deadlineMs: PAYMENTS_DEADLINE_MS, gapMs: 120_000, merchants: 400, duplicateRate: opts.duplicates });
  const perPayment = new Map<string, number>();
  for (const r of gen.records) perPayment.set(r.key, (perPayment.get(r.key) ?? 0) + 1);
  // the first paymentIds (generation order = event-time order) whose records fit, leaving room for the malformed
  const budget = Math.floor(opts.count * (1 - opts.malformed));
  const kept = new Set<string>();
  let total = 0;
  for (const [id, k] of perPayment) {
    if (total + k > budget) break;
    kept.add(id);
    total += k;
  }
  const tag = `-${opts.seed.toString(36)}`;
  const valid = gen.records.filter((r) => kept.has(r.key));
  const last = valid.reduce((m, r) => Math.max(m, r.timestamp), 0);
  const delta = opts.now - last;
  const rnd = prng((opts.seed ^ 0x2545f491) >>> 0);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const out: ScenarioRecord[] = [];
  for (const r of valid) {
    const base = { ...(r.value as object), eventId: `${r.value.eventId}${tag}`, paymentId: `${r.value.paymentId}${tag}`, eventTime: r.value.eventTime + delta };
    const value = r.topic === 'payments' ? (base as Payment) : ({ ...base, settledAt: (r.value as Settlement).settledAt + delta, settlementId: `${(r.value as Settlement).settlementId}${tag}` } as Settlement);
    const rec: ScenarioRecord = { topic: r.topic, key: value.paymentId, value, timestamp: r.timestamp + delta, kind: r.duplicate ? 'duplicate' : 'event' };
    while (out.length < opts.count && opts.malformed > 0 && rnd() < opts.malformed) out.push(malformedPayment(rec, rnd, pick));
    out.push(rec);
  }
  return out;
}

/** A malformed record made from a valid payment or settlement: bytes that are not (complete) Avro, or a value that fails validation. */
function malformedPayment(r: ScenarioRecord, rnd: () => number, pick: <T>(xs: readonly T[]) => T): ScenarioRecord {
  if (rnd() < 0.5) return { ...r, kind: 'malformed', corrupt: rnd() < 0.5 ? 'not-avro' : 'truncated' };
  const eventId = `${(r.value as { eventId: string }).eventId}-bad`;
  if (r.topic === 'payments') {
    const v = { ...(r.value as Payment), eventId };
    return { ...r, kind: 'malformed', ...pick<() => Partial<ScenarioRecord>>([() => ({ value: { ...v, amount: 0n } }), () => ({ value: { ...v, currency: 'euro' } }), () => ({ key: `${r.key}-other`, value: v })])() };
  }
  const v = { ...(r.value as Settlement), eventId };
  return {
    ...r,
    kind: 'malformed',
    ...pick<() => Partial<ScenarioRecord>>([
      () => ({ value: { ...v, netAmount: v.grossAmount - v.fee + 1n } }),
      () => ({ value: { ...v, fee: -1n, netAmount: v.grossAmount + 1n } }),
      () => ({ key: `${r.key}-other`, value: v }),
    ])(),
  };
}

export function addValid(valid: DemoStream['valid'], r: Pick<DemoRecord, 'app' | 'topic' | 'value'>): void {
  if (r.app === 'trades') valid.trades.push(r.value as TradeEvent);
  else if (r.app === 'routing') valid.routing.push({ topic: r.topic, value: r.value } as RoutingInput);
  else valid.payments.push({ topic: r.topic, value: r.value } as PaymentsInput);
}

/**
 * A payment and its matching settlement on every partition, stamped `at`: once processed after everything else,
 * stream time on each payments task is past every deadline of the stream, so every payment is decided (they are
 * paid and settled themselves, so they reconcile as MATCHED at once).
 */
export function closingPayments(partitions: number, at: number, seed: number): DemoRecord[] {
  const out: DemoRecord[] = [];
  for (let p = 0, j = 0; p < partitions; j++) {
    const paymentId = `close-${seed}-${j}`;
    if (partitionForKey(Buffer.from(paymentId), partitions) !== p) continue;
    const payment: Payment = { eventId: `${paymentId}-p`, paymentId, merchantId: 'm-close', amount: 10_000n, currency: 'EUR', vendor: 'SEPA', eventTime: at };
    const settlement: Settlement = {
      eventId: `${paymentId}-s`,
      paymentId,
      settlementId: `${paymentId}-e2e`,
      vendor: 'SEPA',
      grossAmount: 10_000n,
      fee: 0n,
      netAmount: 10_000n,
      currency: 'EUR',
      settledAt: at,
      eventTime: at,
    };
    out.push({ app: 'payments', topic: 'payments', key: paymentId, value: payment, timestamp: at, kind: 'event' });
    out.push({ app: 'payments', topic: 'settlements', key: paymentId, value: settlement, timestamp: at, kind: 'event' });
    p++;
  }
  return out;
}

/** Sends records through the Avro serdes, keyed and partitioned like the Java client; malformed ones spoiled. */
export class StreamProducer {
  private readonly producer: Producer;
  private connected = false;

  constructor(
    kafka: Kafka,
    private readonly serdeFor: SerdeFor,
    private readonly partitions: number,
  ) {
    this.producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  }

  async send(records: readonly DemoRecord[], signal: AbortSignal, onSent: (sent: readonly DemoRecord[]) => void, batchSize = 500): Promise<void> {
    if (!this.connected) {
      await this.producer.connect();
      this.connected = true;
    }
    for (let from = 0; from < records.length; from += batchSize) {
      checkInterrupted(signal);
      const chunk = records.slice(from, from + batchSize);
      const byTopic = new Map<string, Message[]>();
      for (const r of chunk) {
        const list = byTopic.get(r.topic) ?? [];
        list.push({ key: r.key, value: await this.encode(r), partition: partitionForKey(Buffer.from(r.key), this.partitions), timestamp: String(r.timestamp) });
        byTopic.set(r.topic, list);
      }
      await this.producer.sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
      onSent(chunk);
    }
  }

  async close(): Promise<void> {
    if (this.connected) await this.producer.disconnect().catch(() => undefined);
    this.connected = false;
  }

  private async encode(r: DemoRecord): Promise<Buffer> {
    if (r.corrupt === 'not-avro') return Buffer.from(JSON.stringify(r.value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
    const bytes = await this.serdeFor(r.topic).serialize(r.value, { topic: r.topic });
    // the 5-byte header stays, half of the Avro body goes
    if (r.corrupt === 'truncated') return bytes.subarray(0, Math.max(6, bytes.length - Math.ceil((bytes.length - 5) / 2)));
    return bytes;
  }
}
