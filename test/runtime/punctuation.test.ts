import { afterAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { Serdes, TopologyBuilder, type Processor, type ProcessorContext, type Record } from '../../index.js';
import { PartitionReader } from '../../runtime/partition-reader.js';
import { createTopics, kafka, produce, unique, waitFor } from '../helpers/kafka.js';
import { workerFactory } from '../helpers/workers.js';

const newWorker = workerFactory('punct', { guarantee: 'exactly_once', logger: pino({ level: 'warn' }) });
const readers: PartitionReader[] = [];
afterAll(async () => {
  for (const r of readers) await r.close();
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

/**
 * Reads the (single-partition) output topic read_committed, with whether each record was written inside a
 * transaction: each call reads it all again, through one reader kept open for the file's tests.
 */
function outputsOf(topic: string): () => Promise<Output[]> {
  const reader = new PartitionReader(kafka());
  readers.push(reader);
  return async () => {
    const out: Output[] = [];
    await reader.read(topic, 0, null, (messages) => {
      for (const m of messages) {
        out.push({
          key: m.key!.toString(),
          value: Number(m.value!.toString()),
          inTransaction: (m as { batchContext?: { inTransaction?: boolean } }).batchContext?.inTransaction === true,
        });
      }
    });
    return out;
  };
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
    const worker = newWorker({ applicationId: app, topology });
    const outputs = outputsOf(output);
    await worker.start();

    // Before any input: the wall-clock punctuator runs and its outputs commit.
    await waitFor('wall-clock punctuations before any input', async () => valuesOf(await outputs(), 'wall').length >= 2, 60_000, 200);
    expect(valuesOf(await outputs(), 'stream')).toEqual([]);

    // Event times near now (the broker's retention deletes older ones), on a whole stream-time interval.
    const t0 = Math.floor(Date.now() / STREAM_INTERVAL) * STREAM_INTERVAL;
    /** Produce records at these event times and wait until the last one's echo is committed, which also commits every punctuation it caused. */
    const feed = async (...offsets: number[]) => {
      await produce(input, 1, offsets.map((o, i) => ({ key: `k${i}`, value: 'x', timestamp: t0 + o })));
      const last = t0 + offsets[offsets.length - 1]!;
      await waitFor(`the echo of the record at t0+${offsets[offsets.length - 1]}`, async () => valuesOf(await outputs(), 'echo').includes(last), 60_000, 200);
      return valuesOf(await outputs(), 'stream').map((t) => t - t0);
    };

    // Scheduled at init (stream time -1, next due at one interval): the first record's time is past it.
    expect(await feed(0, 100, 500, 999)).toEqual([0]);
    expect(await feed(1000)).toEqual([0, 1000]);
    // A late record does not move stream time back, nor does it fire.
    expect(await feed(1500, 200)).toEqual([0, 1000]);
    expect(await feed(2600)).toEqual([0, 1000, 2600]);

    // With no more input, the wall clock keeps firing.
    const wallBefore = valuesOf(await outputs(), 'wall').length;
    await waitFor('wall-clock punctuations after the input stopped', async () => valuesOf(await outputs(), 'wall').length >= wallBefore + 3, 60_000, 200);
    await worker.stop();

    const all = await outputs();
    const wall = valuesOf(all, 'wall');
    // Once per interval at most: a late firing passes the current time, and the schedule stays on its grid.
    for (let i = 1; i < wall.length; i++) expect(wall[i]!).toBeGreaterThan(wall[i - 1]!);
    expect(wall.length).toBeLessThan((wall[wall.length - 1]! - wall[0]!) / WALL_INTERVAL + 2);
    expect(valuesOf(all, 'echo').map((t) => t - t0)).toEqual([0, 100, 500, 999, 1000, 1500, 200, 2600]);
    // Every output, the punctuations' included, was written inside the task's transactions.
    expect(all.filter((o) => !o.inTransaction)).toEqual([]);
  }, 180_000);
});
