/**
 * One worker process of an application for the bench (apps, scale and latency sections): the real topology
 * (topologies/index.ts) on bench topics (bench/rename-topics.ts), Avro through the registry, RocksDB stores,
 * exactly-once. Started as `node --import tsx bench/app-worker.ts '<AppWorkerSpec JSON>'` (bench/spawn.ts).
 * - mode `drain`: prints READY, waits for `go` (so several workers start together), starts, and stops once the
 *   group's committed offsets reach the end of every input partition (which a worker alone or the whole group
 *   got there); reports its start and drained times (epoch ms), CPU time and peak memory;
 * - mode `serve`: starts, prints READY once every task is restored, runs until `stop`, reports the same.
 */
import os from 'node:os';
import path from 'node:path';
import { rmSync } from 'node:fs';
import pino from 'pino';
import { Worker } from '../runtime/worker.js';
import { SchemaRegistryClient } from '../schemas/registry-client.js';
import { ccompatUrl } from '../infra/registry.js';
import { applications, avroSerdesFor, type ApplicationName } from '../topologies/index.js';
import { renameTopics } from './rename-topics.js';
import { kafkaClient, sleep, sumEnds, topicEnds, waitDrained, type MemoryPeaks } from './common.js';
import { inputTopicsOf } from './context.js';
import { childMain, command, memoryPeaks, ready, specArg } from './child.js';

export interface AppWorkerSpec {
  label: string;
  app: ApplicationName;
  mode: 'drain' | 'serve';
  brokers: string;
  registryUrl: string;
  applicationId: string;
  /** catalog topic → bench topic, inputs and outputs */
  topics: Record<string, string>;
  partitions: number;
  timeoutMs: number;
}

export interface AppWorkerResult extends MemoryPeaks {
  /** Date.now() at start() */
  startedAt: number;
  /** Date.now() when the first committed offset was seen (drain) */
  firstCommitAt: number | null;
  /** Date.now() when the group was drained (drain) */
  drainedAt: number | null;
  /** CPU time (user + system) of the process from start() to drained / stop */
  cpuSeconds: number;
  /** Sum of the output topics' end offsets at the end (commit markers included) */
  outputOffsets: number;
  /** Dead-letter topic end offsets at the end (commit markers included) */
  deadLetterOffsets: number;
}

const spec = specArg<AppWorkerSpec>();
const stateDir = path.join(os.tmpdir(), `weir-bench-${spec.label}-${process.pid}`);

async function main(): Promise<AppWorkerResult> {
  const app = applications[spec.app];
  const serdes = avroSerdesFor(new SchemaRegistryClient({ url: ccompatUrl(spec.registryUrl) }));
  const topology = renameTopics(app.build(serdes, { partitions: spec.partitions, backend: 'rocksdb' }), spec.topics);
  const deadLetterTopic = `${spec.applicationId}-dead-letters`;
  const worker = new Worker({
    applicationId: spec.applicationId,
    topology,
    brokers: spec.brokers,
    stateDir,
    guarantee: 'exactly_once',
    deadLetterTopic,
    // warnings and errors to stderr; stdout carries the result line
    logger: pino({ level: process.env.WEIR_LOG_LEVEL ?? 'warn', base: { bench: spec.label } }, pino.destination(2)),
  });
  const failed = worker.done.then(() => new Promise<never>(() => {}));
  failed.catch(() => undefined);
  const admin = kafkaClient(spec.brokers, `weir-bench-${spec.label}`).admin();
  await admin.connect();
  try {
    const ends = await topicEnds(admin, inputTopicsOf(app, spec.topics));
    let drainedAt: number | null = null;
    let firstCommitAt: number | null = null;
    if (spec.mode === 'drain') {
      ready();
      await command('go');
    }
    const startedAt = Date.now();
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    await worker.start();
    if (spec.mode === 'drain') {
      const d = await waitDrained(admin, spec.applicationId, ends, { deadline: t0 + spec.timeoutMs, failed, what: spec.label });
      drainedAt = startedAt + (d.drained - t0);
      firstCommitAt = d.firstCommit === null ? null : startedAt + (d.firstCommit - t0);
    } else {
      while (!worker.ready) {
        if (performance.now() - t0 > spec.timeoutMs) throw new Error(`${spec.label}: not ready after ${spec.timeoutMs} ms`);
        await Promise.race([sleep(50), failed]);
      }
      ready();
      await Promise.race([command('stop'), failed]);
    }
    const cpu = process.cpuUsage(cpu0);
    await worker.stop();
    const outputs = await topicEnds(admin, app.outputs.map((c) => spec.topics[c.topic]!));
    const dlq = await topicEnds(admin, [deadLetterTopic]).catch(() => new Map());
    if (spec.mode === 'drain' && sumEnds(ends) === 0) throw new Error(`${spec.label}: the input is empty`);
    return {
      startedAt,
      firstCommitAt,
      drainedAt,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      outputOffsets: sumEnds(outputs),
      deadLetterOffsets: sumEnds(dlq),
      ...memoryPeaks(),
    };
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

childMain(spec.label, main, () => rmSync(stateDir, { recursive: true, force: true }));
