/**
 * A circuit breaker in front of a sink's database.
 * Responsible for:
 * - counting consecutive outage failures; at `failureThreshold` it opens and refuses calls at once;
 * - after `coolDownMs` letting exactly one probe call through (half-open): success closes it, failure reopens it;
 * - reporting every state change.
 * Only errors the caller calls failures count (a constraint violation proves the database is up).
 * Not `opossum`: its statistical rolling window and its call timeout, which rejects while the call still runs,
 * do not fit a transaction that must be known to have committed or not.
 */
import { BreakerOpenError } from './errors.js';

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  failureThreshold: number;
  coolDownMs: number;
  onStateChange?: (change: { from: BreakerState; to: BreakerState; error?: unknown }) => void;
  now?: () => number;
}

export class CircuitBreaker {
  private current: BreakerState = 'closed';
  private failures = 0;
  private openedAt = 0;
  private probing = false;
  private readonly now: () => number;

  constructor(private readonly opts: BreakerOptions) {
    this.now = opts.now ?? Date.now;
  }

  get state(): BreakerState {
    return this.current;
  }

  get consecutiveFailures(): number {
    return this.failures;
  }

  async call<T>(fn: () => Promise<T>, isFailure: (err: unknown) => boolean): Promise<T> {
    this.admit();
    let result: T;
    try {
      result = await fn();
    } catch (err) {
      if (isFailure(err)) this.onFailure(err);
      else this.onSuccess();
      throw err;
    }
    this.onSuccess();
    return result;
  }

  /** Throws `BreakerOpenError` unless a call may go through now. */
  private admit(): void {
    const state = this.current;
    switch (state) {
      case 'closed':
        return;
      case 'open': {
        const left = this.openedAt + this.opts.coolDownMs - this.now();
        if (left > 0) throw new BreakerOpenError(left);
        this.transition('half-open');
        this.probing = true;
        return;
      }
      case 'half-open':
        if (this.probing) throw new BreakerOpenError(Math.max(50, Math.floor(this.opts.coolDownMs / 4)));
        this.probing = true;
        return;
      default:
        return assertNever(state);
    }
  }

  private onSuccess(): void {
    this.failures = 0;
    this.probing = false;
    if (this.current !== 'closed') this.transition('closed');
  }

  private onFailure(error: unknown): void {
    this.failures++;
    this.probing = false;
    const state = this.current;
    switch (state) {
      case 'closed':
        if (this.failures >= this.opts.failureThreshold) this.open(error);
        return;
      case 'half-open':
        this.open(error);
        return;
      case 'open':
        // a call admitted before the breaker opened failed late: the cool-down is already running
        return;
      default:
        return assertNever(state);
    }
  }

  private open(error: unknown): void {
    this.openedAt = this.now();
    this.transition('open', error);
  }

  private transition(to: BreakerState, error?: unknown): void {
    const from = this.current;
    if (from === to) return;
    this.current = to;
    this.opts.onStateChange?.({ from, to, error });
  }
}

function assertNever(x: never): never {
  throw new Error(`unexpected breaker state ${String(x)}`);
}
