import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TopologyTestDriver, Serdes, partitionForKey } from '../../index.js';
import { StateDirectory } from '../../state/state-directory.js';
import { paymentsTopology, PAYMENTS_STORES, PAYMENTS_TOPICS, type PaymentsTopologyOptions } from '../../topologies/payments.js';
import { duplicatesCounted } from '../../processors/dedupe.js';
import { ignoredCounted, type ReconciliationStoreValue } from '../../processors/payments/reconciliation-processor.js';
import { contractOf } from '../../schemas/catalog.js';
import type { Payment, Reconciliation, Settlement } from '../../schemas/types.js';
import { generatePayments, type GeneratedRecord } from '../fixtures/payments-generator.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const DEADLINE = 48 * HOUR;
const RETENTION = 7 * DAY;
const T0 = Date.UTC(2025, 0, 1);

const serdes = () => ({ payments: Serdes.json<Payment>(), settlements: Serdes.json<Settlement>(), reconciliations: Serdes.json<Reconciliation>() });

interface Output {
  partition: number;
  key: string;
  value: Reconciliation;
  timestamp: number;
}

type Backend = 'memory' | 'rocksdb';

function newDriver(opts: Partial<PaymentsTopologyOptions> & { partitions: number; backend: Backend; log?: TopologyTestDriver['log']; stateDir?: StateDirectory }) {
  const topology = paymentsTopology({ serdes: serdes(), deadlineMs: DEADLINE, retentionMs: RETENTION, ...opts, partitions: opts.partitions });
  const n = opts.partitions;
  return new TopologyTestDriver(topology, {
    partitions: { payments: n, settlements: n, reconciliations: n },
    log: opts.log,
    stateDirectory: opts.backend === 'rocksdb' ? (opts.stateDir ?? new StateDirectory(mkdtempSync(path.join(os.tmpdir(), 'weir-payments-')), 'test-app')) : undefined,
  });
}

async function pipe(driver: TopologyTestDriver, r: GeneratedRecord): Promise<void> {
  await driver.pipeInput(r.topic, r.key, r.value, { timestamp: r.timestamp });
}

/** Every reconciliation in the log, partition by partition, in offset order (readOutput sorts by timestamp). */
function outputs(driver: TopologyTestDriver, partitions: number): Output[] {
  const json = Serdes.json<Reconciliation>();
  const out: Output[] = [];
  for (let p = 0; p < partitions; p++) {
    for (const r of driver.log.records(PAYMENTS_TOPICS.reconciliations, p)) {
      out.push({ partition: p, key: r.key!.toString('utf8'), value: json.deserialize(r.value!), timestamp: r.timestamp });
    }
  }
  return out;
}

function byKey(out: Output[]): Map<string, Reconciliation[]> {
  const m = new Map<string, Reconciliation[]>();
  for (const o of out) {
    const list = m.get(o.key) ?? [];
    list.push(o.value);
    m.set(o.key, list);
  }
  return m;
}

function partitionOf(key: string, partitions: number): number {
  return partitionForKey(Buffer.from(key, 'utf8'), partitions);
}

/**
 * One payment per partition, stamped `time`: moves every task's stream time there. Their own results would come
 * only after `time` + deadline, so they produce none.
 */
function sentinels(partitions: number, time: number): GeneratedRecord[] {
  const out: GeneratedRecord[] = [];
  for (let p = 0, j = 0; p < partitions; j++) {
    const key = `flush-${j}`;
    if (partitionOf(key, partitions) !== p) continue;
    const value: Payment = { eventId: `flush-${j}`, paymentId: key, merchantId: 'm-flush', amount: 10_000n, currency: 'EUR', vendor: 'SEPA', eventTime: time };
    out.push({ topic: 'payments', key, value, timestamp: time, duplicate: false });
    p++;
  }
  return out;
}

/**
 * The expected results per paymentId, recomputed here from the records alone (it calls no weir code but the
 * partitioner): stream time per partition is the largest timestamp piped so far; the first payment and the first
 * settlement of a paymentId pair up; one side alone is decided at eventTime + deadline once stream time has passed
 * that, and a late other side then adds the pair's result after it.
 */
function expectedResults(records: GeneratedRecord[], partitions: number): { results: Map<string, Reconciliation[]>; duplicates: number } {
  const streamTime = new Array<number>(partitions).fill(-1);
  const seen = new Set<string>();
  let duplicates = 0;
  const sides = new Map<string, { payment?: Payment; settlement?: Settlement; results: Reconciliation[] }>();
  const pair = (p: Payment, s: Settlement, decidedAt: number): Reconciliation => {
    const comparable = p.currency === s.currency;
    return {
      paymentId: p.paymentId,
      status: comparable && p.amount === s.grossAmount ? 'MATCHED' : 'AMOUNT_MISMATCH',
      settlementId: s.settlementId,
      merchantId: p.merchantId,
      vendor: p.vendor,
      expectedAmount: p.amount,
      settledAmount: s.grossAmount,
      difference: comparable ? s.grossAmount - p.amount : null,
      fee: s.fee,
      currency: p.currency,
      settlementCurrency: s.currency,
      decidedAt,
    };
  };
  const missing = (p: Payment): Reconciliation => ({
    paymentId: p.paymentId,
    status: 'MISSING_SETTLEMENT',
    settlementId: null,
    merchantId: p.merchantId,
    vendor: p.vendor,
    expectedAmount: p.amount,
    settledAmount: null,
    difference: null,
    fee: null,
    currency: p.currency,
    settlementCurrency: null,
    decidedAt: p.eventTime + DEADLINE,
  });
  const unexpected = (s: Settlement): Reconciliation => ({
    paymentId: s.paymentId,
    status: 'UNEXPECTED_SETTLEMENT',
    settlementId: s.settlementId,
    merchantId: null,
    vendor: s.vendor,
    expectedAmount: null,
    settledAmount: s.grossAmount,
    difference: null,
    fee: s.fee,
    currency: s.currency,
    settlementCurrency: s.currency,
    decidedAt: s.eventTime + DEADLINE,
  });

  for (const r of records) {
    const part = partitionOf(r.key, partitions);
    streamTime[part] = Math.max(streamTime[part]!, r.timestamp);
    const id = `${r.topic}|${r.value.eventId}`;
    if (seen.has(id)) {
      duplicates++;
      continue;
    }
    seen.add(id);
    const entry = sides.get(r.key) ?? { results: [] };
    sides.set(r.key, entry);
    const first = r.topic === 'payments' ? entry.settlement : entry.payment;
    if (r.topic === 'payments') entry.payment = r.value as Payment;
    else entry.settlement = r.value as Settlement;
    if (!first) continue;
    const firstDeadline = first.eventTime + DEADLINE;
    if (streamTime[part]! > firstDeadline + RETENTION) throw new Error(`the generator made ${r.key} later than the retention; the model does not cover it`);
    if (streamTime[part]! > firstDeadline) entry.results.push(r.topic === 'payments' ? unexpected(first as Settlement) : missing(first as Payment));
    entry.results.push(pair(entry.payment!, entry.settlement!, r.value.eventTime));
  }
  for (const [key, entry] of sides) {
    if (entry.payment && entry.settlement) continue;
    const alone = (entry.payment ?? entry.settlement)!;
    if (streamTime[partitionOf(key, partitions)]! > alone.eventTime + DEADLINE) {
      entry.results.push(entry.payment ? missing(entry.payment) : unexpected(entry.settlement!));
    }
  }
  const results = new Map<string, Reconciliation[]>();
  for (const [key, entry] of sides) if (entry.results.length > 0) results.set(key, entry.results);
  return { results, duplicates };
}

async function sumOverPartitions(driver: TopologyTestDriver, partitions: number, f: (p: number) => Promise<number>): Promise<number> {
  let total = 0;
  for (let p = 0; p < partitions; p++) total += await f(p);
  return total;
}

async function storeKeys(driver: TopologyTestDriver, partition = 0): Promise<string[]> {
  const store = await driver.getStore<string, ReconciliationStoreValue>(PAYMENTS_STORES.reconciliation, partition);
  const keys: string[] = [];
  for await (const { key } of store.all()) keys.push(key);
  return keys;
}

describe('payments topology', () => {
  it('reads and writes the catalog topics', () => {
    const topology = paymentsTopology({ serdes: serdes(), backend: 'memory' });
    expect(topology.sourceTopics.sort()).toEqual(['payments', 'settlements']);
    expect(topology.sinkTopics).toEqual(['reconciliations']);
    for (const t of [...topology.sourceTopics, ...topology.sinkTopics]) expect(contractOf(t).application).toBe('payments');
    // One sub-topology: payments and settlements are co-partitioned and meet in one task.
    expect(topology.subTopologies).toHaveLength(1);
  });
});

// Whole-stream runs take seconds each on a busy machine.
describe('payments reconciliation: generated streams', { timeout: 240_000 }, () => {
  const PARTS = 4;
  const generated = generatePayments({ seed: 20250101, count: 2000, deadlineMs: DEADLINE });
  const flush = sentinels(PARTS, generated.maxEventTime + DEADLINE + 1);
  const stream = [...generated.records, ...flush];

  async function runAll(records: GeneratedRecord[], opts: { backend: Backend; punctuationIntervalMs?: number }) {
    const driver = newDriver({ partitions: PARTS, backend: opts.backend, punctuationIntervalMs: opts.punctuationIntervalMs });
    for (const r of records) await pipe(driver, r);
    return driver;
  }

  let reference: Output[] | undefined;
  async function referenceRun(): Promise<Output[]> {
    if (!reference) {
      const driver = await runAll(stream, { backend: 'memory', punctuationIntervalMs: 1_000 });
      reference = outputs(driver, PARTS);
      await driver.close();
    }
    return reference;
  }

  it('covers every scenario, with duplicates, in thousands of events', () => {
    const scenarios = new Map<string, number>();
    for (const i of generated.intents.values()) scenarios.set(i.scenario, (scenarios.get(i.scenario) ?? 0) + 1);
    expect(scenarios.size).toBe(9);
    for (const n of scenarios.values()) expect(n).toBeGreaterThan(40);
    expect(generated.records.length).toBeGreaterThan(3500);
    expect(generated.duplicates.payments).toBeGreaterThan(50);
    expect(generated.duplicates.settlements).toBeGreaterThan(50);
    const merchants = new Set(generated.records.filter((r) => r.topic === 'payments').map((r) => (r.value as Payment).merchantId));
    expect(merchants.size).toBeGreaterThan(40);
    // Deterministic: the same seed gives the same stream.
    const again = generatePayments({ seed: 20250101, count: 2000, deadlineMs: DEADLINE });
    expect(Serdes.json().serialize(again.records).equals(Serdes.json().serialize(generated.records))).toBe(true);
  });

  it('gives every payment one current final status, equal to an independent recomputation', async () => {
    const out = await referenceRun();
    const actual = byKey(out);
    const expected = expectedResults(stream, PARTS);
    // Every result, in order, per paymentId: amounts, differences, fees, currencies, decidedAt.
    expect(actual).toEqual(expected.results);
    // Each result is keyed by its paymentId, on that key's partition, stamped with decidedAt.
    for (const o of out) {
      expect(o.value.paymentId).toBe(o.key);
      expect(o.partition).toBe(partitionOf(o.key, PARTS));
      expect(o.timestamp).toBe(o.value.decidedAt);
    }
    // Every generated paymentId ends with exactly the status its scenario was built for (the last result is current).
    expect(new Set(actual.keys())).toEqual(new Set(generated.intents.keys()));
    const intermediates = new Map<string, number>();
    for (const [paymentId, intent] of generated.intents) {
      const results = actual.get(paymentId)!;
      const current = results[results.length - 1]!;
      expect({ paymentId, status: current.status, decidedAt: current.decidedAt }).toEqual({ paymentId, status: intent.finalStatus, decidedAt: intent.finalDecidedAt });
      if (current.status === 'MATCHED' || current.status === 'AMOUNT_MISMATCH') expect(current.difference).toBe(intent.difference);
      if (intent.certainIntermediate) expect(results.map((r) => r.status)).toEqual([intent.certainIntermediate, intent.finalStatus]);
      else if (intent.scenario !== 'delayed-settlement') expect(results).toHaveLength(1);
      if (results.length > 1) intermediates.set(intent.scenario, (intermediates.get(intent.scenario) ?? 0) + 1);
      expect(results.length).toBeLessThanOrEqual(2);
    }
    // Settlements delivered after stream time passed their payment's deadline were declared missing first.
    expect(intermediates.get('delayed-settlement') ?? 0).toBeGreaterThan(50);
    const statuses = new Set([...actual.values()].map((r) => r[r.length - 1]!.status));
    expect(statuses).toEqual(new Set(['MATCHED', 'AMOUNT_MISMATCH', 'MISSING_SETTLEMENT', 'UNEXPECTED_SETTLEMENT']));
    const currencyMismatches = [...actual.values()].map((r) => r[r.length - 1]!).filter((r) => r.settlementCurrency !== null && r.settlementCurrency !== r.currency);
    expect(currencyMismatches.length).toBeGreaterThan(50);
    for (const r of currencyMismatches) expect([r.status, r.difference]).toEqual(['AMOUNT_MISMATCH', null]);
  });

  it('drops and counts duplicates, and they change nothing', async () => {
    const withDuplicates = await runAll(stream, { backend: 'memory', punctuationIntervalMs: 1_000 });
    const counted =
      (await sumOverPartitions(withDuplicates, PARTS, async (p) => duplicatesCounted(await withDuplicates.getStore(PAYMENTS_STORES.paymentsDedupe, p)))) +
      (await sumOverPartitions(withDuplicates, PARTS, async (p) => duplicatesCounted(await withDuplicates.getStore(PAYMENTS_STORES.settlementsDedupe, p))));
    expect(counted).toBe(generated.duplicates.payments + generated.duplicates.settlements);
    expect(counted).toBe(expectedResults(stream, PARTS).duplicates);
    for (let p = 0; p < PARTS; p++) {
      expect(await ignoredCounted(await withDuplicates.getStore(PAYMENTS_STORES.reconciliation, p))).toEqual({ 'late-duplicate': 0, 'extra-payment': 0, 'extra-settlement': 0 });
    }
    const withoutDuplicates = await runAll(
      stream.filter((r) => !r.duplicate),
      { backend: 'memory', punctuationIntervalMs: 1_000 },
    );
    expect(outputs(withoutDuplicates, PARTS)).toEqual(outputs(withDuplicates, PARTS));
    await withDuplicates.close();
    await withoutDuplicates.close();
  });

  it('produces the same results whatever the punctuation interval', async () => {
    const small = await referenceRun();
    for (const interval of [1, 30 * DAY]) {
      const driver = await runAll(stream, { backend: 'memory', punctuationIntervalMs: interval });
      expect(outputs(driver, PARTS)).toEqual(small);
      await driver.close();
    }
  });

  it('produces the same results on RocksDB, across a restart half way that restores from the changelog', async () => {
    const half = Math.floor(stream.length / 2);
    const first = newDriver({ partitions: PARTS, backend: 'rocksdb', punctuationIntervalMs: HOUR });
    for (const r of stream.slice(0, half)) await pipe(first, r);
    await first.close();
    // Fresh state directory: every store is rebuilt from its changelog in the shared log.
    const second = newDriver({ partitions: PARTS, backend: 'rocksdb', punctuationIntervalMs: HOUR, log: first.log });
    for (const r of stream.slice(half)) await pipe(second, r);
    expect(outputs(second, PARTS)).toEqual(await referenceRun());
    await second.close();
  });

  it('forgets decided payments once stream time passes their retention', async () => {
    const driver = await runAll(stream, { backend: 'memory', punctuationIntervalMs: HOUR });
    const keysBefore = await sumOverPartitions(driver, PARTS, async (p) => (await storeKeys(driver, p)).length);
    expect(keysBefore).toBeGreaterThan(1000);
    // Move stream time past every retention: only the sentinels' own state is left.
    for (const r of sentinels(PARTS, generated.maxEventTime + 2 * DEADLINE + RETENTION + 2)) await pipe(driver, r);
    const left: string[] = [];
    for (let p = 0; p < PARTS; p++) left.push(...(await storeKeys(driver, p)));
    expect(left.filter((k) => !k.includes('flush-')).sort()).toEqual([]);
    await driver.close();
  });
});

describe.each(['memory', 'rocksdb'] as const)('payments reconciliation: targeted cases on %s stores', (backend) => {
  const pay = (id: string, eventTime: number, over: Partial<Payment> = {}): Payment => ({
    eventId: `pe-${id}-${eventTime}`,
    paymentId: id,
    merchantId: 'm-1',
    amount: 1_234_500n, // 123.4500
    currency: 'EUR',
    vendor: 'ADYEN',
    eventTime,
    ...over,
  });
  const settle = (id: string, eventTime: number, over: Partial<Settlement> = {}): Settlement => {
    const s: Settlement = {
      eventId: `se-${id}-${eventTime}`,
      paymentId: id,
      settlementId: `psp-${id}`,
      vendor: 'ADYEN',
      grossAmount: 1_234_500n,
      fee: 25_900n,
      netAmount: 0n,
      currency: 'EUR',
      settledAt: eventTime - HOUR,
      eventTime,
      ...over,
    };
    return { ...s, netAmount: over.netAmount ?? s.grossAmount - s.fee };
  };

  async function run(inputs: Array<Payment | Settlement>, opts: { punctuationIntervalMs?: number } = {}) {
    const driver = newDriver({ partitions: 1, backend, punctuationIntervalMs: opts.punctuationIntervalMs });
    for (const v of inputs) {
      const topic = 'settlementId' in v ? 'settlements' : 'payments';
      await driver.pipeInput(topic, v.paymentId, v, { timestamp: v.eventTime });
    }
    return driver;
  }
  const results = (driver: TopologyTestDriver) => outputs(driver, 1).map((o) => o.value);

  it('MATCHED: same currency, gross == amount; decidedAt is the settlement that completed the pair', async () => {
    const driver = await run([pay('p1', T0), settle('p1', T0 + 5 * HOUR)]);
    expect(results(driver)).toEqual([
      {
        paymentId: 'p1',
        status: 'MATCHED',
        settlementId: 'psp-p1',
        merchantId: 'm-1',
        vendor: 'ADYEN',
        expectedAmount: 1_234_500n,
        settledAmount: 1_234_500n,
        difference: 0n,
        fee: 25_900n,
        currency: 'EUR',
        settlementCurrency: 'EUR',
        decidedAt: T0 + 5 * HOUR,
      },
    ]);
    await driver.close();
  });

  it('AMOUNT_MISMATCH: difference = gross − amount, either sign, exact at scale 4', async () => {
    const driver = await run([
      pay('over', T0, { amount: 99_999_999_999_999_999_999n }),
      pay('under', T0),
      settle('over', T0 + HOUR, { grossAmount: -99_999_999_999_999_999_999n, fee: 0n }),
      settle('under', T0 + HOUR, { grossAmount: 1_234_499n }),
    ]);
    expect(results(driver).map((r) => [r.paymentId, r.status, r.difference, r.fee])).toEqual([
      ['over', 'AMOUNT_MISMATCH', -199_999_999_999_999_999_998n, 0n],
      ['under', 'AMOUNT_MISMATCH', -1n, 25_900n],
    ]);
    await driver.close();
  });

  it('AMOUNT_MISMATCH on currencies: difference null, settlementCurrency set, even with equal digits', async () => {
    const driver = await run([pay('p1', T0), settle('p1', T0 + HOUR, { currency: 'GBP' })]);
    expect(results(driver)).toMatchObject([
      { paymentId: 'p1', status: 'AMOUNT_MISMATCH', difference: null, currency: 'EUR', settlementCurrency: 'GBP', expectedAmount: 1_234_500n, settledAmount: 1_234_500n },
    ]);
    await driver.close();
  });

  it('a settlement before its payment pairs when the payment comes; decidedAt is the payment', async () => {
    const driver = await run([settle('p1', T0), pay('p1', T0 + HOUR, { amount: 1_000_000n })]);
    expect(results(driver)).toMatchObject([{ paymentId: 'p1', status: 'AMOUNT_MISMATCH', difference: 234_500n, merchantId: 'm-1', decidedAt: T0 + HOUR }]);
    await driver.close();
  });

  it('MISSING_SETTLEMENT once stream time passes eventTime + deadline (not when it reaches it), decidedAt = deadline', async () => {
    const driver = await run([pay('p1', T0), pay('other', T0 + DEADLINE)]);
    expect(results(driver)).toEqual([]);
    await driver.pipeInput('payments', 'other2', pay('other2', T0 + DEADLINE + 1), { timestamp: T0 + DEADLINE + 1 });
    expect(results(driver)).toEqual([
      {
        paymentId: 'p1',
        status: 'MISSING_SETTLEMENT',
        settlementId: null,
        merchantId: 'm-1',
        vendor: 'ADYEN',
        expectedAmount: 1_234_500n,
        settledAmount: null,
        difference: null,
        fee: null,
        currency: 'EUR',
        settlementCurrency: null,
        decidedAt: T0 + DEADLINE,
      },
    ]);
    await driver.close();
  });

  it('a settlement at exactly the deadline is on time', async () => {
    const driver = await run([pay('p1', T0), settle('p1', T0 + DEADLINE)]);
    expect(results(driver).map((r) => r.status)).toEqual(['MATCHED']);
    await driver.close();
  });

  it('UNEXPECTED_SETTLEMENT when no payment comes by the settlement eventTime + deadline', async () => {
    const driver = await run([settle('ghost', T0, { vendor: 'SEPA', fee: 0n, currency: 'EUR' }), pay('other', T0 + DEADLINE + 1)]);
    expect(results(driver)).toEqual([
      {
        paymentId: 'ghost',
        status: 'UNEXPECTED_SETTLEMENT',
        settlementId: 'psp-ghost',
        merchantId: null,
        vendor: 'SEPA',
        expectedAmount: null,
        settledAmount: 1_234_500n,
        difference: null,
        fee: 0n,
        currency: 'EUR',
        settlementCurrency: 'EUR',
        decidedAt: T0 + DEADLINE,
      },
    ]);
    await driver.close();
  });

  it('a late settlement (eventTime past the deadline) is never lost: MISSING_SETTLEMENT, then the pair result supersedes it', async () => {
    for (const interval of [1, 30 * DAY]) {
      // The settlement itself moves stream time past the deadline: the deadline is decided first, whatever the interval.
      const driver = await run([pay('p1', T0), settle('p1', T0 + DEADLINE + 5 * HOUR, { grossAmount: 1_234_600n })], { punctuationIntervalMs: interval });
      expect(results(driver).map((r) => [r.status, r.decidedAt, r.difference])).toEqual([
        ['MISSING_SETTLEMENT', T0 + DEADLINE, null],
        ['AMOUNT_MISMATCH', T0 + DEADLINE + 5 * HOUR, 100n],
      ]);
      await driver.close();
    }
  });

  it('a settlement delivered after stream time passed its payment deadline supersedes the missing result, decidedAt its own eventTime', async () => {
    const driver = await run([pay('p1', T0), pay('other', T0 + DEADLINE + HOUR), settle('p1', T0 + HOUR)]);
    expect(results(driver).map((r) => [r.paymentId, r.status, r.decidedAt])).toEqual([
      ['p1', 'MISSING_SETTLEMENT', T0 + DEADLINE],
      ['p1', 'MATCHED', T0 + HOUR],
    ]);
    await driver.close();
  });

  it('a payment arriving after its settlement was declared unexpected supersedes it with the pair result', async () => {
    const driver = await run([settle('p1', T0), pay('p1', T0 + DEADLINE + HOUR)]);
    expect(results(driver).map((r) => [r.status, r.decidedAt, r.merchantId])).toEqual([
      ['UNEXPECTED_SETTLEMENT', T0 + DEADLINE, null],
      ['MATCHED', T0 + DEADLINE + HOUR, 'm-1'],
    ]);
    await driver.close();
  });

  it('a record already past its own deadline when it arrives is decided at once', async () => {
    const driver = await run([pay('other', T0 + 10 * DAY), pay('old', T0)]);
    expect(results(driver).map((r) => [r.paymentId, r.status, r.decidedAt])).toEqual([['old', 'MISSING_SETTLEMENT', T0 + DEADLINE]]);
    await driver.close();
  });

  it('ignores and counts a second settlement or payment for a paymentId that has one', async () => {
    const driver = await run([
      pay('p1', T0),
      settle('p1', T0 + HOUR),
      settle('p1', T0 + 2 * HOUR, { eventId: 'se-other', grossAmount: 5n }),
      pay('p1', T0 + 3 * HOUR, { eventId: 'pe-other' }),
      settle('p1', T0 + HOUR), // a retry: the dedupe step drops it
    ]);
    expect(results(driver).map((r) => r.status)).toEqual(['MATCHED']);
    expect(await ignoredCounted(await driver.getStore(PAYMENTS_STORES.reconciliation))).toEqual({ 'late-duplicate': 0, 'extra-payment': 1, 'extra-settlement': 1 });
    expect(await duplicatesCounted(await driver.getStore(PAYMENTS_STORES.settlementsDedupe))).toBe(1);
    await driver.close();
  });

  it('counts a retry older than the dedupe window as a late duplicate while the payment is remembered', async () => {
    const driver = newDriver({ partitions: 1, backend, dedupeRetentionMs: HOUR, punctuationIntervalMs: MINUTE });
    const p = pay('p1', T0);
    for (const v of [p, pay('other', T0 + 3 * HOUR)]) await driver.pipeInput('payments', v.paymentId, v, { timestamp: v.eventTime });
    await driver.pipeInput('payments', 'p1', p, { timestamp: p.eventTime });
    expect(await ignoredCounted(await driver.getStore(PAYMENTS_STORES.reconciliation))).toMatchObject({ 'late-duplicate': 1 });
    expect(results(driver)).toEqual([]);
    await driver.close();
  });

  it('keeps a decided payment for the retention, then forgets it and its index entry', async () => {
    const driver = await run([pay('p1', T0), settle('p1', T0 + HOUR)]);
    expect((await storeKeys(driver)).sort()).toEqual([`d:${(T0 + HOUR + DEADLINE + RETENTION).toString(16).padStart(16, '0')}:p1`, 's:p1']);
    await driver.pipeInput('payments', 'x', pay('x', T0 + HOUR + DEADLINE + RETENTION), { timestamp: T0 + HOUR + DEADLINE + RETENTION });
    expect(await storeKeys(driver)).toContain('s:p1');
    await driver.pipeInput('payments', 'y', pay('y', T0 + HOUR + DEADLINE + RETENTION + 1), { timestamp: T0 + HOUR + DEADLINE + RETENTION + 1 });
    expect((await storeKeys(driver)).filter((k) => k.endsWith(':p1'))).toEqual([]);
    // No result for p1 came again, and x and y are still within their deadlines.
    expect(results(driver).map((r) => [r.paymentId, r.status])).toEqual([['p1', 'MATCHED']]);
    await driver.close();
  });

  it('sends records that break the contracts to the dead-letter topic', async () => {
    const driver = newDriver({ partitions: 1, backend });
    const bad: Array<[string, string, unknown, RegExp]> = [
      ['payments', 'p1', pay('p2', T0), /record key "p1" is not the paymentId "p2"/],
      ['payments', 'p1', pay('p1', T0, { amount: 0n }), /amount must be > 0/],
      ['payments', 'p1', { ...pay('p1', T0), amount: '12.5' }, /amount must be an exact decimal/],
      ['payments', 'p1', pay('p1', T0, { vendor: 'PAYPAL' as 'SEPA' }), /vendor must be one of ADYEN, SEPA/],
      ['payments', 'p1', pay('p1', T0, { currency: 'eur' }), /currency must be an ISO 4217 code/],
      ['settlements', 'p1', settle('p1', T0, { netAmount: 1n }), /netAmount must equal grossAmount - fee/],
      ['settlements', 'p1', settle('p1', T0, { fee: -1n }), /fee must be >= 0/],
      ['settlements', 'p1', settle('p1', T0, { grossAmount: 10n ** 20n }), /grossAmount has more than 20 digits/],
      ['settlements', 'p1', { ...settle('p1', T0), eventTime: -5 }, /eventTime must be epoch milliseconds/],
    ];
    for (const [topic, key, value] of bad) await driver.pipeInput(topic, key, value, { timestamp: T0 });
    const dlq = await driver.readOutput('test-app-dead-letters', Serdes.string(), Serdes.string());
    expect(dlq).toHaveLength(bad.length);
    dlq.forEach((d, i) => {
      expect(d.headers['weir.dlq.stage']?.toString()).toBe('validation');
      expect(d.headers['weir.dlq.error']?.toString()).toMatch(bad[i]![3]);
    });
    expect(outputs(driver, 1)).toEqual([]);
    expect(await storeKeys(driver)).toEqual([]);
    await driver.close();
  });
});
