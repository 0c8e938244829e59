/**
 * The sinks' retry helper and circuit breaker, on their own (no broker, no database).
 */
import { describe, expect, it } from 'vitest';
import { CircuitBreaker, type BreakerState } from '../../sinks/circuit-breaker.js';
import { BreakerOpenError, RetriesExhaustedError, RetryAbortedError, SinkWriteError } from '../../sinks/errors.js';
import { createRetry } from '../../sinks/retry.js';

const outage = () => new SinkWriteError('s', 'connection lost', { retriable: true });
const broken = () => new SinkWriteError('s', 'constraint violated', { retriable: false });
const isRetriable = (e: unknown) => (e as { retriable?: boolean }).retriable === true;

describe('createRetry', () => {
  it('retries what the call site lists, with growing jittered waits, until it works', async () => {
    const waits: number[] = [];
    const retry = createRetry({ retries: 5, initialRetryTime: 10, maxRetryTime: 1000, isRetriable, onRetry: (i) => waits.push(i.delayMs) });
    let calls = 0;
    const result = await retry(async () => {
      if (++calls < 4) throw outage();
      return 'done';
    });
    expect(result).toBe('done');
    expect(calls).toBe(4);
    expect(waits).toHaveLength(3);
    expect(waits[0]).toBeGreaterThanOrEqual(8);
    expect(waits[0]).toBeLessThanOrEqual(12);
    expect(waits[2]!).toBeGreaterThan(waits[0]!);
  });

  it('does not retry an error the call site does not list, nor TypeError or RangeError', async () => {
    const retry = createRetry({ retries: 5, initialRetryTime: 1, isRetriable: () => true });
    for (const err of [new TypeError('x is undefined'), new RangeError('bad length')]) {
      let calls = 0;
      await expect(
        retry(async () => {
          calls++;
          throw err;
        }),
      ).rejects.toBe(err);
      expect(calls).toBe(1);
    }
    const strict = createRetry({ retries: 5, initialRetryTime: 1, isRetriable });
    const e = broken();
    await expect(strict(() => Promise.reject(e))).rejects.toBe(e);
  });

  it('bail stops at once; exhaustion wraps the last failure as the cause', async () => {
    const retry = createRetry({ retries: 2, initialRetryTime: 1, isRetriable });
    const stop = new Error('stop here');
    await expect(retry(async (bail) => bail(stop))).rejects.toBe(stop);
    const last = outage();
    const err = await retry(() => Promise.reject(last)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetriesExhaustedError);
    expect((err as RetriesExhaustedError).attempts).toBe(3);
    expect((err as Error).cause).toBe(last);
  });

  it('an abort ends the waiting; an error carrying retryAfterMs sets the wait', async () => {
    const ac = new AbortController();
    const retry = createRetry({ retries: Infinity, initialRetryTime: 10_000, maxRetryTime: 10_000, isRetriable, signal: ac.signal });
    setTimeout(() => ac.abort(new Error('stopping')), 30);
    const t0 = Date.now();
    await expect(retry(() => Promise.reject(outage()))).rejects.toBeInstanceOf(RetryAbortedError);
    expect(Date.now() - t0).toBeLessThan(1000);
    const waits: number[] = [];
    const hinted = createRetry({ retries: 1, initialRetryTime: 5000, isRetriable, onRetry: (i) => waits.push(i.delayMs) });
    let calls = 0;
    await hinted(async () => {
      if (++calls === 1) throw new BreakerOpenError(20);
    });
    expect(waits).toEqual([20]);
  });
});

describe('CircuitBreaker', () => {
  it('closed → open after K consecutive failures → half-open probe after the cool-down → closed', async () => {
    let now = 0;
    const changes: string[] = [];
    const breaker = new CircuitBreaker({ failureThreshold: 3, coolDownMs: 1000, now: () => now, onStateChange: (c) => changes.push(`${c.from}>${c.to}`) });
    const fail = () => breaker.call(() => Promise.reject(outage()), isRetriable);
    const ok = () => breaker.call(async () => 'ok', isRetriable);
    await expect(fail()).rejects.toThrow('connection lost');
    await expect(ok()).resolves.toBe('ok'); // a success in between resets the count
    for (let i = 0; i < 3; i++) await expect(fail()).rejects.toThrow('connection lost');
    expect(breaker.state).toBe<BreakerState>('open');
    const refused = await ok().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(BreakerOpenError);
    expect((refused as BreakerOpenError).retryAfterMs).toBe(1000);
    now = 1000;
    await expect(fail()).rejects.toThrow('connection lost'); // the probe fails: open again
    expect(breaker.state).toBe('open');
    now = 2500;
    let release!: () => void;
    const probe = breaker.call(() => new Promise<string>((r) => (release = () => r('probed'))), isRetriable);
    expect(breaker.state).toBe('half-open');
    await expect(ok()).rejects.toBeInstanceOf(BreakerOpenError); // one probe at a time
    release();
    await expect(probe).resolves.toBe('probed');
    expect(breaker.state).toBe('closed');
    expect(changes).toEqual(['closed>open', 'open>half-open', 'half-open>open', 'open>half-open', 'half-open>closed']);
  });

  it('errors the caller does not call failures (the database answered) do not open it', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1, coolDownMs: 1000 });
    await expect(breaker.call(() => Promise.reject(broken()), isRetriable)).rejects.toThrow('constraint');
    expect(breaker.state).toBe('closed');
  });
});
