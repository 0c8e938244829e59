import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { Worker, type WorkerConfig } from '../../index.js';
import { brokers } from './kafka.js';

/**
 * The Workers a test file starts: each one pushed onto the list this returns is stopped after the file's tests, so a
 * test that fails midway leaves none running.
 */
export function stoppedAfterAll(): Worker[] {
  const workers: Worker[] = [];
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop().catch(() => undefined)));
  });
  return workers;
}

/**
 * Makes the Workers of a test file: on the test broker, each with a fresh state directory (`weir-<label>-…` under the
 * OS temp directory), with `defaults` where `config` says nothing; each one made is stopped after the file's tests.
 */
export function workerFactory(
  label: string,
  defaults: Partial<WorkerConfig> = {},
): (config: Pick<WorkerConfig, 'applicationId' | 'topology'> & Partial<WorkerConfig>) => Worker {
  const workers = stoppedAfterAll();
  return (config) => {
    const worker = new Worker({ brokers: brokers(), stateDir: mkdtempSync(path.join(os.tmpdir(), `weir-${label}-`)), ...defaults, ...config });
    workers.push(worker);
    return worker;
  };
}
