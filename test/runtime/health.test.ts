import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { Worker } from '../../index.js';
import { attachWorkerMetrics } from '../../runtime/metrics.js';
import { startHealthServer, type HealthServer } from '../../runtime/health-server.js';
import { runningSumTopology } from '../fixtures/running-sum.js';
import { brokers, createTopics, drained, produce, unique, waitFor } from '../helpers/kafka.js';
import { makeInputs } from '../helpers/running-sum-check.js';

const quiet = pino({ level: 'warn' });
const cleanup: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
});

describe('metrics and health of a worker (real broker)', () => {
  it('is not ready while its stores restore, ready after; /metrics counts what happened', async () => {
    const input = unique('health-in');
    const output = unique('health-out');
    const app = unique('health-app');
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'weir-health-'));
    await createTopics([
      { topic: input, partitions: 2 },
      { topic: output, partitions: 2 },
    ]);
    // Many distinct keys make a long changelog to restore.
    await produce(input, 2, makeInputs(150_000, 150_000).map((i) => ({ key: i.key, value: JSON.stringify(i.value) })));
    const config = { applicationId: app, topology: runningSumTopology({ input, output }), brokers: brokers(), stateDir, logger: quiet };
    const first = new Worker(config);
    await first.start();
    await waitFor('the input to drain', () => drained(app, input), 180_000, 500);
    await first.stop();
    rmSync(stateDir, { recursive: true, force: true });

    const worker = new Worker(config);
    const registry = new Registry();
    const detach = attachWorkerMetrics(worker, registry, app);
    cleanup.push(async () => detach());
    const server: HealthServer = await startHealthServer({ registry, source: { live: () => true, ready: () => worker.ready } });
    cleanup.push(() => server.close(), () => worker.stop());
    const readiness = async () => (await fetch(`${server.url}/health/readiness`)).status;

    const seenDuringRestore: number[] = [];
    let probing: Promise<void> | undefined;
    worker.on('task.restore', (p) => {
      if (p.next < p.end && !probing) probing = readiness().then((s) => void seenDuringRestore.push(s));
    });
    expect(await readiness()).toBe(503);
    await worker.start();
    await waitFor('readiness', async () => (await readiness()) === 200, 120_000, 50);
    await probing;
    expect(seenDuringRestore).toEqual([503]);

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`weir_restored_records_total\\{app="${app}"\\} 150000`));
    expect(metrics).toMatch(new RegExp(`weir_ready\\{app="${app}"\\} [01]`));
    expect((await fetch(`${server.url}/health/liveness`)).status).toBe(200);
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
  }, 300_000);
});
