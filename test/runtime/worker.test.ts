import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { Worker, BrokerUnreachableError, ConfigError } from '../../index.js';
import { runningSumTopology, type SumInput } from '../fixtures/running-sum.js';
import { brokers, createTopics, drained, produce, unique, waitFor } from '../helpers/kafka.js';
import { expectExactSums, makeInputs, readSumOutputs } from '../helpers/running-sum-check.js';
import { workerFactory } from '../helpers/workers.js';

const newWorker = workerFactory('worker', { logger: pino({ level: 'warn' }) });

describe.each(['exactly_once', 'at_least_once'] as const)('Worker on the real broker (%s)', (guarantee) => {
  it('keeps exact running sums over 12 partitions and 200k records', async () => {
    const input = unique('sum-in');
    const output = unique('sum-out');
    const app = unique('sum-app');
    await createTopics([
      { topic: input, partitions: 12 },
      { topic: output, partitions: 12 },
    ]);
    const inputs = makeInputs(200_000, 5000);
    await produce(input, 12, inputs.map((i) => ({ key: i.key, value: JSON.stringify(i.value) })));
    const worker = newWorker({ applicationId: app, topology: runningSumTopology({ input, output, partitions: 12 }), guarantee });
    await worker.start();
    await waitFor('the input to drain', () => drained(app, input), 240_000, 500);
    await worker.stop();
    expectExactSums(inputs, await readSumOutputs(output, 12));
  }, 300_000);
});

describe('Worker: bad use gets a clear error', () => {
  it('names the unreachable broker within a bounded time', async () => {
    const started = Date.now();
    const worker = newWorker({
      applicationId: unique('nobroker'),
      topology: runningSumTopology({ input: 'a', output: 'b' }),
      brokers: '127.0.0.1:1',
      connectTimeoutMs: 4000,
      logger: pino({ level: 'silent' }),
    });
    const err = await worker.start().catch((e) => e);
    expect(err).toBeInstanceOf(BrokerUnreachableError);
    expect(err.message).toMatch(/cannot reach Kafka at 127\.0\.0\.1:1/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('refuses to start when an input topic is missing', async () => {
    const missing = unique('missing');
    const worker = newWorker({ applicationId: unique('missing-app'), topology: runningSumTopology({ input: missing, output: missing + '-out' }) });
    const err = await worker.start().catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toContain(`input topic(s) ${missing} do not exist`);
  });

  it('rejects a bad setting naming it', () => {
    expect(() => new Worker({ applicationId: 'x y', topology: runningSumTopology({ input: 'a', output: 'b' }), brokers: brokers() })).toThrow(
      /applicationId 'x y' must be non-empty/,
    );
    expect(() => new Worker({ applicationId: 'ok', topology: runningSumTopology({ input: 'a', output: 'b' }), brokers: 'nohostport' })).toThrow(
      /broker address 'nohostport' is not host:port/,
    );
  });
});
