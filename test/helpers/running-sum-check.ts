import { expect } from 'vitest';
import { Serdes } from '../../runtime/serde.js';
import type { SumInput, SumOutput } from '../fixtures/running-sum.js';
import { readAll } from './kafka.js';

export interface SumCase {
  inputs: Array<{ key: string; value: SumInput }>;
}

export function makeInputs(count: number, keys: number, startSeq = 1): Array<{ key: string; value: SumInput }> {
  const out: Array<{ key: string; value: SumInput }> = [];
  for (let i = 0; i < count; i++) {
    const seq = startSeq + i;
    out.push({ key: `key-${(seq * 7919) % keys}`, value: { seq, amount: (seq % 97) + 1 } });
  }
  return out;
}

/**
 * Exactly-once check: one output per input (no loss, no duplicate), and each output's sum is the sum of that key's
 * amounts up to and including that input, in production order — so a state change applied twice or lost shows.
 */
export function expectExactSums(inputs: Array<{ key: string; value: SumInput }>, outputs: Array<{ key: string; value: SumOutput }>): void {
  const expectedSum = new Map<string, number>();
  const running = new Map<string, number>();
  for (const i of inputs) {
    const s = (running.get(i.key) ?? 0) + i.value.amount;
    running.set(i.key, s);
    expectedSum.set(`${i.key}#${i.value.seq}`, s);
  }
  const seen = new Map<string, number>();
  const wrong: string[] = [];
  for (const o of outputs) {
    const id = `${o.key}#${o.value.seq}`;
    seen.set(id, (seen.get(id) ?? 0) + 1);
    if (expectedSum.get(id) !== o.value.sum && wrong.length < 5) wrong.push(`${id}: got ${o.value.sum}, want ${expectedSum.get(id)}`);
  }
  const duplicates = [...seen].filter(([, n]) => n > 1).length;
  const missing = [...expectedSum.keys()].filter((id) => !seen.has(id)).length;
  expect({ outputs: outputs.length, duplicates, missing, wrong }).toEqual({ outputs: inputs.length, duplicates: 0, missing: 0, wrong: [] });
}

/** The state the running sum ends with: per key, the sum and the count of all its inputs. */
export function expectedTotals(inputs: Array<{ key: string; value: SumInput }>): Map<string, { sum: number; count: number }> {
  const totals = new Map<string, { sum: number; count: number }>();
  for (const i of inputs) {
    const t = totals.get(i.key) ?? { sum: 0, count: 0 };
    totals.set(i.key, { sum: t.sum + i.value.amount, count: t.count + 1 });
  }
  return totals;
}

/**
 * The sums store's final state, as its changelog holds it (last record per key; a null value deletes the key), is
 * exactly the totals of `inputs`: every input's contribution once, in the state as in the outputs.
 */
export function expectChangelogState(
  inputs: Array<{ key: string; value: SumInput }>,
  changelog: Array<{ key: Buffer | null; value: Buffer | null }>,
): void {
  const state = new Map<string, unknown>();
  for (const r of changelog) {
    const key = r.key!.toString('utf8');
    if (r.value === null) state.delete(key);
    else state.set(key, JSON.parse(r.value.toString('utf8')));
  }
  const sorted = <V>(m: Map<string, V>) => Object.fromEntries([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  expect(sorted(state)).toEqual(sorted(expectedTotals(inputs)));
}

/** The running sum's outputs on `topic`, decoded (JSON values, string keys). */
export async function readSumOutputs(topic: string, partitions: number): Promise<Array<{ key: string; value: SumOutput }>> {
  const json = Serdes.json<SumOutput>();
  return (await readAll(topic, partitions)).map((m) => ({ key: m.key!.toString(), value: json.deserialize(m.value!) }));
}
