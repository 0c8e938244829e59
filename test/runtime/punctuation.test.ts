import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Worker, Serdes, TopologyBuilder, type Processor, type ProcessorContext, type Record } from '../../index.js';
import { brokers, createTopics, produce, readAll, unique, waitFor } from '../helpers/kafka.js';

const quiet = pino({ level: 'warn' });
const workers: Worker[] = [];
afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop().catch(() => undefined)));
});

const STREAM_INTERVAL = 1000;
const WALL_INTERVAL = 300;

/** Echoes each input's timestamp, and forwards one record per punctuation: key 'stream' or 'wall', value the punctuation time. */
class Punctuating implements Processor<string, string, string, string> {
  private ctx!: ProcessorContext<string, string>;

  init(ctx: ProcessorContext<string, string>): void {
    this.ctx = ctx;
    ctx.schedule(STREAM_INTERVAL, 'stream-time', (t) => ctx.forward({ key: 'stream', value: String(t), timestamp: t }));
    ctx.schedule(WALL_INTERVAL, 'wall-clock', (t) => ctx.forward({ key: 'wall', value: String(t), timestamp: t }));
  }

  async process(record: Record<string, string>): Promise<void> {
    await this.ctx.forward({ key: 'echo', value: String(record.timestamp), timestamp: record.timestamp });
  }
}

interface Output {
  key: string;
  value: number;
  inTransaction: boolean;
}

/** The output topic read_committed, with whether each record was written inside a transaction. */
async function outputs(topic: string): Promise<Output[]> {
  return (await readAll(topic, 1)).map((m) => ({
    key: m.key!.toString(),
    value: Number(m.value!.toString()),
    inTransaction: (m as { batchContext?: { inTransaction?: boolean } }).batchContext?.inTransaction === true,
  }));
}

const valuesOf = (out: Output[], key: string) => out.filter((o) => o.key === key).map((o) => o.value);

describe('Punctuators on the real worker (exactly_once)', () => {
  it('fires wall-clock punctuators without input and stream-time ones as stream time passes, inside the transactions', async () => {
    const input = unique('punct-in');
    const output = unique('punct-out');
    const app = unique('punct-app');
    await createTopics([
      { topic: input, partitions: 1 },
      { topic: output, partitions: 1 },
    ]);
    const topology = new TopologyBuilder()
      .addSource('in', { topics: [input], keySerde: Serdes.string(), valueSerde: Serdes.string() })
      .addProcessor('punctuating', () => new Punctuating(), 'in')
      .addSink('out', { topic: output, keySerde: Serdes.string(), valueSerde: Serdes.string() }, 'punctuating')
      .build();
    const worker = new Worker({
      applicationId: app,
      topology,
      brokers: brokers(),
      stateDir: mkdtempSync(path.join(os.tmpdir(), 'weir-punct-')),
      guarantee: 'exactly_once',
      logger: quiet,
    });
    workers.push(worker);
    await worker.start();

    // Before any input: the wall-clock punctuator runs and its outputs commit.
    await waitFor('wall-clock punctuations before any input', async () => valuesOf(await outputs(output), 'wall').length >= 2, 60_000, 200);
    expect(valuesOf(await outputs(output), 'stream')).toEqual([]);

    // Event times near now (the broker's retention deletes older ones), on a whole stream-time interval.
    const t0 = Math.floor(Date.now() / STREAM_INTERVAL) * STREAM_INTERVAL;
    /** Produce records at these event times and wait until the last one's echo is committed, which also commits every punctuation it caused. */
    const feed = async (...offsets: number[]) => {
      await produce(input, 1, offsets.map((o, i) => ({ key: `k${i}`, value: 'x', timestamp: t0 + o })));
      const last = t0 + offsets[offsets.length - 1]!;
      await waitFor(`the echo of the record at t0+${offsets[offsets.length - 1]}`, async () => valuesOf(await outputs(output), 'echo').includes(last), 60_000, 200);
      return valuesOf(await outputs(output), 'stream').map((t) => t - t0);
    };

    // Scheduled at init (stream time -1, next due at one interval): the first record's time is past it.
    expect(await feed(0, 100, 500, 999)).toEqual([0]);
    expect(await feed(1000)).toEqual([0, 1000]);
    // A late record does not move stream time back, nor does it fire.
    expect(await feed(1500, 200)).toEqual([0, 1000]);
    expect(await feed(2600)).toEqual([0, 1000, 2600]);

    // With no more input, the wall clock keeps firing.
    const wallBefore = valuesOf(await outputs(output), 'wall').length;
    await waitFor('wall-clock punctuations after the input stopped', async () => valuesOf(await outputs(output), 'wall').length >= wallBefore + 3, 60_000, 200);
    await worker.stop();

    const all = await outputs(output);
    const wall = valuesOf(all, 'wall');
    // Once per interval at most: a late firing passes the current time, and the schedule stays on its grid.
    for (let i = 1; i < wall.length; i++) expect(wall[i]!).toBeGreaterThan(wall[i - 1]!);
    expect(wall.length).toBeLessThan((wall[wall.length - 1]! - wall[0]!) / WALL_INTERVAL + 2);
    expect(valuesOf(all, 'echo').map((t) => t - t0)).toEqual([0, 100, 500, 999, 1000, 1500, 200, 2600]);
    // Every output, the punctuations' included, was written inside the task's transactions.
    expect(all.filter((o) => !o.inTransaction)).toEqual([]);
  }, 180_000);
});
