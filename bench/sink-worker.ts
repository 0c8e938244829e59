/**
 * One sink for the bench (section `sinks`) in its own process: the Postgres or Redis sink (sinks/) behind a
 * SinkRunner with its default batching, reading Avro output records through the registry, as the demo deploys
 * them (cli/demo/deployment.ts). Started as `node --import tsx bench/sink-worker.ts '<SinkWorkerSpec JSON>'`.
 * Drains the pre-produced topics: time from start() until the sink has stored the end offset of every partition.
 */
import { SinkRunner } from '../sinks/sink-runner.js';
import { PostgresSink } from '../sinks/postgres/postgres-sink.js';
import { RedisSink } from '../sinks/redis/redis-sink.js';
import { POSTGRES_WRITERS, REDIS_WRITERS } from '../sinks/applications.js';
import type { Sink } from '../sinks/sink.js';
import type { Serde } from '../runtime/serde.js';
import { SchemaRegistryClient } from '../schemas/registry-client.js';
import { ccompatUrl } from '../infra/registry.js';
import { avroSerdesFor } from '../topologies/index.js';
import { kafkaClient, sleep, sumEnds, topicEnds, type MemoryPeaks } from './common.js';
import { childMain, memoryPeaks, specArg } from './child.js';

export interface SinkWorkerSpec {
  kind: 'postgres' | 'redis';
  /** sink name = its consumer group */
  name: string;
  brokers: string;
  registryUrl: string;
  /** bench topic → catalog topic (positions, ledger-entries, routing-decisions) */
  topics: Record<string, string>;
  /** Postgres schema / Redis key prefix */
  schema?: string;
  prefix?: string;
  timeoutMs: number;
}

export interface SinkWorkerResult extends MemoryPeaks {
  records: number;
  /** rows inserted or updated as Postgres reports them; Redis: write commands (HSET/SET) */
  rows: number;
  seconds: number;
  /** start() → the first flush done (database connection and migrations, group join) */
  startupSeconds: number;
  cpuSeconds: number;
}

const spec = specArg<SinkWorkerSpec>();

/** The writer of each bench topic, by the catalog topic it stands for (sinks/applications.ts). */
function writersFor<W>(table: Record<string, () => W>, database: string): Record<string, W> {
  return Object.fromEntries(
    Object.entries(spec.topics).map(([topic, contract]) => {
      const writer = table[contract];
      if (!writer) throw new Error(`no ${database} writer for ${contract}`);
      return [topic, writer()];
    }),
  );
}

function buildSink(): Sink {
  if (spec.kind === 'postgres') return new PostgresSink({ name: spec.name, schema: spec.schema!, writers: writersFor(POSTGRES_WRITERS, 'Postgres') });
  return new RedisSink({ name: spec.name, prefix: spec.prefix!, writers: writersFor(REDIS_WRITERS, 'Redis') });
}

async function main(): Promise<SinkWorkerResult> {
  const serdeFor = avroSerdesFor(new SchemaRegistryClient({ url: ccompatUrl(spec.registryUrl) }));
  const topics: Record<string, Serde<unknown>> = Object.fromEntries(Object.entries(spec.topics).map(([t, c]) => [t, serdeFor<unknown>(c)]));
  const admin = kafkaClient(spec.brokers, `weir-bench-${spec.name}`).admin();
  await admin.connect();
  try {
    const ends = await topicEnds(admin, Object.keys(spec.topics));
    const runner = new SinkRunner({ sink: buildSink(), brokers: spec.brokers, topics, log: (level, msg) => level !== 'debug' && level !== 'info' && process.stderr.write(`${spec.name} ${level}: ${msg}\n`) });
    let failure: Error | null = null;
    runner.on('error', (e) => {
      if (!e.willRetry) failure = e.error;
    });
    const t0 = performance.now();
    let firstFlush: number | null = null;
    runner.on('flush', () => (firstFlush ??= performance.now()));
    const cpu0 = process.cpuUsage();
    await runner.start();
    for (;;) {
      if (failure) throw failure;
      const stored = new Map(runner.status().partitions.map((p) => [`${p.topic}:${p.partition}`, p.committed === null ? -1 : Number(p.committed)]));
      if ([...ends].every(([topic, parts]) => [...parts].every(([p, end]) => (stored.get(`${topic}:${p}`) ?? -1) >= end))) break;
      if (performance.now() - t0 > spec.timeoutMs) throw new Error(`${spec.name}: not drained after ${spec.timeoutMs / 1000} s: ${JSON.stringify(runner.status())}`);
      await sleep(50);
    }
    const t1 = performance.now();
    const cpu = process.cpuUsage(cpu0);
    const status = runner.status();
    await runner.stop();
    const records = sumEnds(ends);
    if (status.recordsWritten !== records) throw new Error(`${spec.name}: wrote ${status.recordsWritten} records of ${records}`);
    return {
      records,
      rows: status.rowsWritten,
      seconds: (t1 - t0) / 1000,
      startupSeconds: ((firstFlush ?? t1) - t0) / 1000,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      ...memoryPeaks(),
    };
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

childMain(spec.name, main);
