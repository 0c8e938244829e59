/**
 * What the chaos run did, as it does it: one line per action with the time since the start, printed at once
 * (stdout), and a tally of the faults by kind for the summary and its "faults injected" check.
 */
export type FaultKind = 'worker killed' | 'sink killed' | 'broker restarted' | 'Postgres connections cut' | 'Redis connections cut';

export const FAULT_KINDS: readonly FaultKind[] = ['worker killed', 'sink killed', 'broker restarted', 'Postgres connections cut', 'Redis connections cut'];

export class Journal {
  readonly startedAt = Date.now();
  /** how many times each kind of fault happened (for connection cuts: how many connections were cut) */
  readonly faults = new Map<FaultKind, number>(FAULT_KINDS.map((k) => [k, 0]));
  /** processes that exited without being killed, as `<label>: <how>` */
  readonly ownExits: string[] = [];

  constructor(private readonly out: (line: string) => void) {}

  /** Seconds since the start, for the lines. */
  get seconds(): number {
    return (Date.now() - this.startedAt) / 1000;
  }

  action(line: string): void {
    this.out(`[${this.seconds.toFixed(1).padStart(6)} s] ${line}`);
  }

  fault(kind: FaultKind, count = 1): void {
    this.faults.set(kind, this.faults.get(kind)! + count);
  }
}
