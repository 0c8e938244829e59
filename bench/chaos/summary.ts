/**
 * The chaos run's closing report on stdout: what was sent and done, a table of the checks (PASS / FAIL / SKIP, the
 * check, what it found), and one verdict line. chaos.test.ts reads this table: keep its shape.
 */
import type { Check } from '../../cli/demo/checks.js';
import { APP_NAMES } from '../../cli/demo/plan.js';
import type { DemoStream } from '../../cli/demo/stream.js';
import { FAULT_KINDS, type Journal } from './journal.js';
import type { ChaosOptions } from './options.js';

export interface SummaryInput {
  opts: ChaosOptions;
  stream: DemoStream;
  closing: number;
  journal: Journal;
  checks: Check[];
  seconds: number;
}

const NAME_WIDTH = 30;

export function printSummary(out: (line: string) => void, s: SummaryInput): void {
  const fmt = (x: number) => x.toLocaleString('en-US');
  out('');
  out(`CHAOS SUMMARY (${s.opts.profile}: ${s.opts.rounds} rounds, ${fmt(s.opts.count)} records per application, ${s.opts.workers} workers per application, seed ${s.opts.seed})`);
  for (const a of APP_NAMES) {
    const st = s.stream.stats[a];
    const extra = a === 'payments' ? ` (+${s.closing} closing records)` : '';
    out(`  sent    ${a.padEnd(9)}${fmt(st.records)} records: ${fmt(st.events)} events, ${fmt(st.duplicates)} duplicates, ${fmt(st.malformed)} malformed${extra}`);
  }
  out(`  faults  ${FAULT_KINDS.map((k) => `${k}: ${s.journal.faults.get(k)}`).join(', ')}`);
  out('');
  out(`  ${'result'.padEnd(6)}  ${'check'.padEnd(NAME_WIDTH)}  what was compared`);
  for (const c of s.checks) {
    out(`  ${c.status.toUpperCase().padEnd(6)}  ${c.name.padEnd(NAME_WIDTH)}  ${c.summary}`);
    for (const d of c.details) out(`  ${''.padEnd(6)}  ${''.padEnd(NAME_WIDTH)}    ${d}`);
  }
  out('');
  const failed = s.checks.filter((c) => c.status !== 'pass');
  if (failed.length === 0) out(`ALL CHECKS PASSED (${s.checks.length}/${s.checks.length}) in ${s.seconds.toFixed(1)} s`);
  else out(`CHECKS FAILED: ${failed.map((c) => c.name).join(', ')} (${s.checks.length - failed.length}/${s.checks.length} passed) in ${s.seconds.toFixed(1)} s`);
}

/** A chaos run passes only when every check passed (a skipped check is not a pass). */
export function allPassed(checks: readonly Check[]): boolean {
  return checks.length > 0 && checks.every((c) => c.status === 'pass');
}
