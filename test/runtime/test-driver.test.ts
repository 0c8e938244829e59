import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TopologyTestDriver, Serdes, TopologyBuilder, keyValueStore, ProcessingError, RecordRejectedError, type Headers, type Processor, type ProcessorContext, type Record } from '../../index.js';
import { partitionForKey } from '../../runtime/partitioner.js';
import { runningSumTopology, type SumInput, type SumOutput } from '../fixtures/running-sum.js';
import { StateDirectory } from '../../state/state-directory.js';

describe.each(['memory', 'rocksdb'] as const)('TopologyTestDriver with %s stores', (backend) => {
  const stateDirectory = () => {
    if (backend === 'memory') return undefined;
    const dir = new StateDirectory(mkdtempSync(path.join(os.tmpdir(), 'weir-driver-')), 'test-app');
    return dir;
  };

  it('keeps a running sum per key across partitions and commits outputs', async () => {
    const topology = runningSumTopology({ input: 'in', output: 'out', backend });
    const driver = new TopologyTestDriver(topology, { partitions: { in: 4, out: 4 }, stateDirectory: stateDirectory() });
    const expected = new Map<string, number>();
    for (let i = 1; i <= 200; i++) {
      const key = `k${i % 7}`;
      await driver.pipeInput<string, SumInput>('in', key, { seq: i, amount: i }, { timestamp: i });
      expected.set(key, (expected.get(key) ?? 0) + i);
    }
    const out = await driver.readOutput<string, SumOutput>('out', Serdes.string(), Serdes.json());
    expect(out).toHaveLength(200);
    const last = new Map<string, number>();
    for (const r of out) last.set(r.key, r.value.sum);
    expect(last).toEqual(expected);
    for (const [k, v] of expected) {
      const partition = out.find((r) => r.key === k)!.partition;
      const store = await driver.getStore<string, { sum: number }>('sums', partition);
      expect((await store.get(k))?.sum).toBe(v);
    }
    await driver.close();
  });

  it('restores stores from the changelog into a fresh driver', async () => {
    const topology = runningSumTopology({ input: 'in', output: 'out', backend });
    const first = new TopologyTestDriver(topology, { partitions: { in: 2, out: 2 }, stateDirectory: stateDirectory() });
    for (let i = 1; i <= 50; i++) await first.pipeInput<string, SumInput>('in', `k${i % 3}`, { seq: i, amount: 1 }, { timestamp: i });
    await first.close();
    // A new driver with empty local state and the same log: restore, then continue.
    const second = new TopologyTestDriver(topology, { partitions: { in: 2, out: 2 }, stateDirectory: stateDirectory(), log: first.log });
    await second.readOutput('out', Serdes.string(), Serdes.json());
    await second.pipeInput<string, SumInput>('in', 'k0', { seq: 51, amount: 1 }, { timestamp: 51 });
    const out = await second.readOutput<string, SumOutput>('out', Serdes.string(), Serdes.json());
    const k0 = out.filter((r) => r.key === 'k0' && r.value.seq === 51);
    expect(k0).toHaveLength(1);
    expect(k0[0]!.value.count).toBe(17); // 16 earlier k0 records (3,6,...,48) + this one
    await second.close();
  });
});

describe('TopologyTestDriver semantics', () => {
  it('sends undecodable records to the dead-letter topic with their coordinates', async () => {
    const topology = runningSumTopology({ input: 'in', output: 'out', backend: 'memory' });
    const driver = new TopologyTestDriver(topology);
    await driver.pipeRaw('in', Buffer.from('k'), Buffer.from('{not json'), { timestamp: 5 });
    await driver.pipeInput<string, SumInput>('in', 'k', { seq: 1, amount: 2 }, { timestamp: 6 });
    const dlq = await driver.readOutput('test-app-dead-letters', Serdes.string(), Serdes.string());
    expect(dlq).toHaveLength(1);
    expect(dlq[0]!.value).toBe('{not json');
    expect(dlq[0]!.headers['weir.dlq.stage']?.toString()).toBe('deserialization');
    expect(dlq[0]!.headers['weir.dlq.topic']?.toString()).toBe('in');
    expect(dlq[0]!.headers['weir.dlq.offset']?.toString()).toBe('0');
    expect(dlq[0]!.headers['weir.dlq.error']?.toString()).toMatch(/JSON/);
    const out = await driver.readOutput<string, SumOutput>('out', Serdes.string(), Serdes.json());
    expect(out.map((r) => r.value.sum)).toEqual([2]);
    await driver.close();
  });

  it('fires stream-time and wall-clock punctuators', async () => {
    const fired: string[] = [];
    class P implements Processor<string, string, string, string> {
      init(ctx: ProcessorContext<string, string>) {
        ctx.schedule(10, 'stream-time', (t) => void fired.push(`stream@${t}`));
        ctx.schedule(1000, 'wall-clock', (t) => void fired.push(`wall@${t}`));
      }
      process(_r: Record<string, string>) {}
    }
    const topology = new TopologyBuilder()
      .addSource('s', { topics: ['in'], keySerde: Serdes.string(), valueSerde: Serdes.string() })
      .addProcessor('p', () => new P(), 's')
      .build();
    const driver = new TopologyTestDriver(topology);
    await driver.pipeInput('in', 'a', 'x', { timestamp: 5 });
    await driver.pipeInput('in', 'a', 'x', { timestamp: 12 });
    await driver.pipeInput('in', 'a', 'x', { timestamp: 35 });
    await driver.advanceWallClockTime(999);
    await driver.advanceWallClockTime(1);
    expect(fired).toEqual(['stream@12', 'stream@35', 'wall@1000']);
    await driver.close();
  });

  it('shows a processor the topic, partition, offset, timestamp and headers of each piped record', async () => {
    const seen: Array<{ topic: string; partition: number; offset: string; timestamp: number; headers: Headers | undefined }> = [];
    const inPunctuation: unknown[] = [];
    class P implements Processor<string, string, string, string> {
      private ctx!: ProcessorContext<string, string>;
      init(ctx: ProcessorContext<string, string>) {
        this.ctx = ctx;
        ctx.schedule(1000, 'stream-time', () => void inPunctuation.push(ctx.recordMetadata()));
      }
      process(r: Record<string, string>) {
        seen.push({ ...this.ctx.recordMetadata()!, timestamp: r.timestamp, headers: r.headers });
      }
    }
    const topology = new TopologyBuilder()
      .addSource('s', { topics: ['a', 'b'], keySerde: Serdes.string(), valueSerde: Serdes.string() })
      .addProcessor('p', () => new P(), 's')
      .build();
    const driver = new TopologyTestDriver(topology, { partitions: { a: 3, b: 3 }, wallClockStart: 42 });
    const binary = Buffer.from([0x00, 0xff, 0x7f, 0x80]);
    await driver.pipeInput('a', 'x', 'v', { partition: 2, timestamp: 1000, headers: { trace: Buffer.from('t1'), bin: binary } });
    await driver.pipeInput('a', 'x', 'v', { partition: 2, timestamp: 999, headers: { trace: Buffer.from('t2') } });
    await driver.pipeInput('b', 'x', 'v', { partition: 2, timestamp: 5 });
    await driver.pipeInput('a', 'y', 'v', { partition: 0, timestamp: 2500, headers: {} });
    expect(partitionForKey(Buffer.from('z'), 3)).toBe(2);
    await driver.pipeInput('a', 'z', 'v', { headers: { empty: Buffer.alloc(0) } });
    await driver.pipeInput('a', 'x', 'v', { partition: 2, timestamp: 1001 });
    expect(seen).toEqual([
      { topic: 'a', partition: 2, offset: '0', timestamp: 1000, headers: { trace: Buffer.from('t1'), bin: binary } },
      { topic: 'a', partition: 2, offset: '1', timestamp: 999, headers: { trace: Buffer.from('t2') } },
      { topic: 'b', partition: 2, offset: '0', timestamp: 5, headers: {} },
      { topic: 'a', partition: 0, offset: '0', timestamp: 2500, headers: {} },
      // no partition given: the key's murmur2 partition (2 of 3 for 'z'); no timestamp given: the driver's wall clock
      { topic: 'a', partition: 2, offset: '2', timestamp: 42, headers: { empty: Buffer.alloc(0) } },
      { topic: 'a', partition: 2, offset: '3', timestamp: 1001, headers: {} },
    ]);
    // Punctuations belong to no record (task 0_2's stream time passed 1000 on its first record, task 0_0's on its 2500).
    expect(inPunctuation).toEqual([undefined, undefined]);
    await driver.close();
  });

  it('fails with the processor, task and record named, under the fail policy', async () => {
    const topology = new TopologyBuilder()
      .addSource('s', { topics: ['in'], keySerde: Serdes.string(), valueSerde: Serdes.string() })
      .addProcessor('boom', () => ({ process: () => { throw new Error('bad value'); } }), 's')
      .build();
    const driver = new TopologyTestDriver(topology);
    const err = await driver.pipeInput('in', 'a', 'x').catch((e) => e);
    expect(err).toBeInstanceOf(ProcessingError);
    expect(err.message).toBe("processor 'boom' of task 0_0 failed on in/0@0: bad value");
  });

  it('dead-letters a failing record and continues under the dead-letter policy', async () => {
    const topology = new TopologyBuilder()
      .addSource('s', { topics: ['in'], keySerde: Serdes.string(), valueSerde: Serdes.string() })
      .addProcessor('maybe', () => ({
        init(ctx: ProcessorContext<string, string>) { (this as { ctx?: unknown }).ctx = ctx; },
        async process(this: { ctx: ProcessorContext<string, string> }, r: Record<string, string>) {
          if (r.value === 'bad') throw new Error('no');
          await this.ctx.forward(r);
        },
      }), 's')
      .addSink('out', { topic: 'out', keySerde: Serdes.string(), valueSerde: Serdes.string() }, 'maybe')
      .build();
    const driver = new TopologyTestDriver(topology, { processingErrorPolicy: 'dead-letter' });
    await driver.pipeInput('in', 'a', 'good1');
    await driver.pipeInput('in', 'a', 'bad');
    await driver.pipeInput('in', 'a', 'good2');
    expect((await driver.readOutput('out', Serdes.string(), Serdes.string())).map((r) => r.value)).toEqual(['good1', 'good2']);
    const dlq = await driver.readOutput('test-app-dead-letters', Serdes.string(), Serdes.string());
    expect(dlq.map((r) => [r.value, r.headers['weir.dlq.stage']?.toString(), r.headers['weir.dlq.node']?.toString()])).toEqual([['bad', 'processing', 'maybe']]);
  });
});

describe('forwarding through a chain of asynchronous processors', () => {
  it('completes, in order, whether or not the parent awaits its forwards', async () => {
    const tick = () => new Promise<void>((r) => setImmediate(r));
    const build = (awaitForward: boolean) =>
      new TopologyBuilder()
        .addSource('s', { topics: ['in'], keySerde: Serdes.string(), valueSerde: Serdes.string() })
        .addProcessor('a', () => {
          let ctx: ProcessorContext<string, string>;
          return {
            init: (c: ProcessorContext<string, string>) => void (ctx = c),
            async process(r: Record<string, string>) {
              await tick();
              const p1 = ctx.forward({ ...r, value: `${r.value}-1` });
              const p2 = ctx.forward({ ...r, value: `${r.value}-2` });
              if (awaitForward) await Promise.all([p1, p2]);
            },
          };
        }, 's')
        .addProcessor('b', () => {
          let ctx: ProcessorContext<string, string>;
          return {
            init: (c: ProcessorContext<string, string>) => void (ctx = c),
            async process(r: Record<string, string>) {
              await tick();
              await ctx.getStore<string, string>('seen').get(r.key);
              await ctx.forward({ ...r, value: `${r.value}-b` });
            },
          };
        }, 'a')
        .addStateStore(keyValueStore('seen', Serdes.string(), Serdes.string(), { backend: 'memory' }), 'b')
        .addSink('out', { topic: 'out', keySerde: Serdes.string(), valueSerde: Serdes.string() }, 'b')
        .build();
    for (const awaitForward of [true, false]) {
      const driver = new TopologyTestDriver(build(awaitForward));
      await driver.pipeInput('in', 'k', 'x');
      await driver.pipeInput('in', 'k', 'y');
      expect((await driver.readOutput('out', Serdes.string(), Serdes.string())).map((r) => r.value)).toEqual(['x-1-b', 'x-2-b', 'y-1-b', 'y-2-b']);
      await driver.close();
    }
  });
});

describe('RecordRejectedError', () => {
  it('dead-letters the record as a validation failure even under the fail policy', async () => {
    const topology = new TopologyBuilder()
      .addSource('s', { topics: ['in'], keySerde: Serdes.string(), valueSerde: Serdes.string() })
      .addProcessor('check', () => ({
        process(r: Record<string, string>) {
          if (r.value === 'stale') throw new RecordRejectedError('version 3 is stale, current is 4');
        },
      }), 's')
      .build();
    const driver = new TopologyTestDriver(topology, { processingErrorPolicy: 'fail' });
    await driver.pipeInput('in', 'k', 'stale');
    const dlq = await driver.readOutput('test-app-dead-letters', Serdes.string(), Serdes.string());
    expect(dlq.map((r) => [r.value, r.headers['weir.dlq.stage']?.toString(), r.headers['weir.dlq.error']?.toString(), r.headers['weir.dlq.error.class']?.toString()])).toEqual([
      ['stale', 'validation', 'version 3 is stale, current is 4', 'RecordRejectedError'],
    ]);
  });
});
