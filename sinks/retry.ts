/**
 * The sinks' one retry helper, in the manner of kafkajs `createRetry(opts)(fn)`:
 * - exponential backoff with jitter: each wait is the previous × `multiplier`, spread by ±`factor`, capped;
 * - retries only what the call site lists as retriable (`isRetriable`), and never a programming error
 *   (TypeError, RangeError, ReferenceError, SyntaxError), whatever `isRetriable` says;
 * - `bail(err)` stops at once with that error;
 * - an error carrying `retryAfterMs` (the circuit breaker's remaining cool-down) sets the next wait;
 * - exhaustion throws `RetriesExhaustedError` with the last failure as `cause`; `signal` aborts the waits.
 */
import { RetriesExhaustedError, RetryAbortedError } from './errors.js';

export interface RetryOptions {
  /** Retries after the first attempt; `Infinity` keeps going until success, a non-retriable error or abort. */
  retries: number;
  /** First wait in ms. */
  initialRetryTime: number;
  /** Longest wait in ms. */
  maxRetryTime: number;
  /** Jitter: a wait is spread uniformly over ±factor of its nominal value. */
  factor: number;
  multiplier: number;
  /** The call site's list of what may succeed on a later attempt. */
  isRetriable: (err: unknown) => boolean;
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
  signal?: AbortSignal;
}

export type Bail = (err: unknown) => never;

const defaults = { retries: 5, initialRetryTime: 300, maxRetryTime: 30_000, factor: 0.2, multiplier: 2 };

const PROGRAMMING_ERRORS = [TypeError, RangeError, ReferenceError, SyntaxError];

class Bailed {
  constructor(readonly error: unknown) {}
}

export function createRetry(
  opts: Partial<Omit<RetryOptions, 'isRetriable'>> & Pick<RetryOptions, 'isRetriable'>,
): <T>(fn: (bail: Bail, attempt: number) => Promise<T>) => Promise<T> {
  const o: RetryOptions = { ...defaults, ...opts };
  const bail: Bail = (err) => {
    throw new Bailed(err);
  };
  return async <T>(fn: (bail: Bail, attempt: number) => Promise<T>): Promise<T> => {
    let wait = o.initialRetryTime;
    for (let attempt = 0; ; attempt++) {
      if (o.signal?.aborted) throw new RetryAbortedError(undefined);
      try {
        return await fn(bail, attempt);
      } catch (err) {
        if (err instanceof Bailed) throw err.error;
        if (PROGRAMMING_ERRORS.some((t) => err instanceof t) || !o.isRetriable(err)) throw err;
        if (attempt >= o.retries) throw new RetriesExhaustedError(attempt + 1, err);
        const hinted = (err as { retryAfterMs?: unknown }).retryAfterMs;
        const delayMs = typeof hinted === 'number' && hinted >= 0 ? hinted : jitter(wait, o.factor);
        wait = Math.min(jitter(wait * o.multiplier, o.factor), o.maxRetryTime);
        o.onRetry?.({ attempt: attempt + 1, delayMs, error: err });
        await sleep(Math.min(delayMs, o.maxRetryTime), o.signal).catch(() => {
          throw new RetryAbortedError(err);
        });
      }
    }
  };
}

function jitter(ms: number, factor: number): number {
  return Math.round(ms * (1 - factor + Math.random() * 2 * factor));
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
