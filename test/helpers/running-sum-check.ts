import { expect } from 'vitest';
import type { SumInput, SumOutput } from '../fixtures/running-sum.js';

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
