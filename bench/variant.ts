/**
 * One bench variant in its own process, so its peak RSS and CPU profile are its own.
 * Started by the ceiling section (bench/ceiling.ts) as `node --import tsx bench/variant.ts '<VariantSpec JSON>'`.
 *
 * Drains the pre-produced input topic and prints one line `WEIR_BENCH_RESULT {...}` on stdout.
 * "Drained" = the group's committed offsets reach the end offsets of every input partition;
 * the time runs from start() (weir) / consumer connect (bare loop) until then.
 */
import fs, { rmSync } from 'node:fs';
import { findSourceMap } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pino from 'pino';
import type { Consumer, Message, Producer } from 'kafkajs';
import { Worker } from '../index.js';
import { MAX_SEND_BYTES, MAX_SEND_RECORDS } from '../runtime/task-producer.js';
import { runningSumTopology } from '../test/fixtures/running-sum.js';
import { endOffsets, kafkaClient, processCpuSeconds, waitDrained, type VariantResult, type VariantSpec } from './common.js';
import { childMain, memoryPeaks, specArg } from './child.js';

const spec = specArg<VariantSpec>();

/** Something that drains the input: the weir worker or the bare kafkajs loop. */
interface Runner {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Rejects when the runner stopped on its own (a fatal error). */
  failed: Promise<never>;
}

function weirRunner(guarantee: 'exactly_once' | 'at_least_once'): Runner {
  const worker = new Worker({
    applicationId: spec.groupId,
    topology: runningSumTopology({ input: spec.input, output: spec.output, partitions: spec.partitions, backend: 'rocksdb' }),
    brokers: spec.brokers,
    stateDir: spec.stateDir,
    guarantee,
    partitionsConsumedConcurrently: spec.concurrency,
    // warnings and errors to stderr; stdout carries the result line
    logger: pino({ level: process.env.WEIR_LOG_LEVEL ?? 'warn', base: { variant: spec.variant } }, pino.destination(2)),
  });
  return {
    start: () => worker.start(),
    stop: () => worker.stop(),
    failed: worker.done.then(() => new Promise<never>(() => {})),
  };
}

/** The ceiling: consume → produce the same records → commit offsets; no transactions, no state, no decoding. */
function bareRunner(): Runner {
  const kafka = kafkaClient(spec.brokers, `weir-bench-${spec.groupId}`);
  const consumer: Consumer = kafka.consumer({ groupId: spec.groupId, maxWaitTimeInMs: 100, allowAutoTopicCreation: false });
  const producer: Producer = kafka.producer({ allowAutoTopicCreation: false });
  let rejectFailed!: (err: unknown) => void;
  const failed = new Promise<never>((_, rej) => (rejectFailed = rej));
  failed.catch(() => undefined);
  consumer.on(consumer.events.CRASH, (e) => {
    const { error, restart } = e.payload as { error: Error; restart: boolean };
    if (!restart) rejectFailed(error);
  });
  // Chunk sends as weir does: below the broker's message.max.bytes, and few enough records for kafkajs' grouping.
  return {
    async start() {
      await producer.connect();
      await consumer.connect();
      await consumer.subscribe({ topics: [spec.input], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        partitionsConsumedConcurrently: spec.concurrency,
        eachBatch: async ({ batch, heartbeat }) => {
          const all = batch.messages;
          if (all.length === 0) return;
          let start = 0;
          while (start < all.length) {
            const messages: Message[] = [];
            let bytes = 0;
            for (; start < all.length && bytes < MAX_SEND_BYTES && messages.length < MAX_SEND_RECORDS; start++) {
              const m = all[start]!;
              bytes += (m.key?.length ?? 0) + (m.value?.length ?? 0) + 64;
              messages.push({ key: m.key, value: m.value, partition: batch.partition, timestamp: m.timestamp });
            }
            await producer.sendBatch({ topicMessages: [{ topic: spec.output, messages }], acks: -1 });
          }
          const next = String(Number(all[all.length - 1]!.offset) + 1);
          await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }]);
          await heartbeat();
        },
      });
    },
    async stop() {
      await consumer.disconnect();
      await producer.disconnect();
    },
    failed,
  };
}

async function main(): Promise<VariantResult> {
  const admin = kafkaClient(spec.brokers, 'weir-bench-probe').admin();
  await admin.connect();
  try {
    const ends = await endOffsets(admin, spec.input);
    const runner = spec.variant === 'bare' ? bareRunner() : weirRunner(spec.variant);
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const brokerCpu0 = processCpuSeconds(spec.brokerPid);
    await runner.start();
    const { firstCommit, drained } = await waitDrained(admin, spec.groupId, new Map([[spec.input, ends]]), {
      deadline: t0 + spec.timeoutMs,
      failed: runner.failed,
      what: spec.variant,
    });
    const seconds = (drained - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const brokerCpu1 = processCpuSeconds(spec.brokerPid);
    await runner.stop();
    const out = await endOffsets(admin, spec.output);
    return {
      variant: spec.variant,
      records: spec.records,
      seconds,
      startupSeconds: ((firstCommit ?? drained) - t0) / 1000,
      recordsPerSecond: spec.records / seconds,
      ...memoryPeaks(),
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      brokerCpuSeconds: brokerCpu0 === null || brokerCpu1 === null ? null : brokerCpu1 - brokerCpu0,
      outputOffsets: [...out.values()].reduce((a, b) => a + b, 0),
    };
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/**
 * Under --cpu-prof: tsx serves the .ts modules as one-line JavaScript, so profile positions are columns of
 * that line. Save the source maps of the project's loaded modules beside the profile to map them back.
 */
function saveSourceMaps(): void {
  const dir = process.env.WEIR_BENCH_PROFILE_DIR;
  if (!dir) return;
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const maps: Record<string, unknown> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
      const f = path.join(d, e.name);
      if (e.isDirectory()) walk(f);
      else if (f.endsWith('.ts')) {
        const url = pathToFileURL(f).href;
        const sm = findSourceMap(url);
        if (sm) maps[url] = sm.payload;
      }
    }
  };
  try {
    walk(root);
    fs.writeFileSync(path.join(dir, 'sourcemaps.json'), JSON.stringify(maps));
  } catch (err) {
    process.stderr.write(`could not save source maps: ${(err as Error).message}\n`);
  }
}

childMain(
  spec.variant,
  async () => {
    const result = await main();
    saveSourceMaps();
    return result;
  },
  () => {
    if (spec.stateDir) rmSync(spec.stateDir, { recursive: true, force: true });
  },
);
