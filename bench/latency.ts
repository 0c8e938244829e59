/**
 * Section `latency`: end-to-end latency per application at a steady input rate (default 2,000 events/s), one
 * worker process (bench/app-worker.ts, exactly-once, Avro, RocksDB).
 *
 * How latency is defined and measured: the driver sends the application's scenario events (the generator
 * `weir produce --generate` uses) at the rate, a few per 10 ms tick, and stamps each event's eventTime and its
 * record timestamp with the wall-clock time it hands it to the producer. Every output of the three topologies
 * carries the event time of the input that caused it as its record timestamp (trades: the trade's eventTime;
 * routing: the timestamp of the record that triggered the assignment; payments: decidedAt = the eventTime of the
 * event that completed the pair). A read_committed consumer of the output topics, in this process (same clock),
 * notes when each output reaches it: latency = that time − the output's timestamp, i.e. event produced → output
 * committed and visible downstream. One sample per output record (a trade gives a position and ledger entries);
 * only outputs caused by events sent after the warm-up count. Event times are wall-clock here, not the
 * generator's compressed ones, so stream-time deadlines (payments: 48 h) do not fire during the run.
 */
import type { Message } from 'kafkajs';
import { encodeRecord } from '../cli/commands/produce.js';
import { generateScenario, type ScenarioRecord } from '../cli/generators/scenarios.js';
import { applications, type ApplicationName } from '../topologies/index.js';
import { createTopics, formatTable, int, log, removeOwned, round, sleep } from './common.js';
import { topicNames, type Aim, type BenchContext, type SectionReport } from './context.js';
import { DUPLICATES, serdesOf } from './inputs.js';
import { startChild } from './spawn.js';
import type { AppWorkerResult, AppWorkerSpec } from './app-worker.js';
import { RSS_AIM_MB } from './apps.js';

export interface LatencyResult {
  app: ApplicationName;
  /** events/s asked for, and sent over the measured window */
  rate: number;
  sentRate: number;
  measuredSeconds: number;
  eventsMeasured: number;
  outputsMeasured: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  peakRssMb: number;
  cpuShare: number;
}

const TICK_MS = 10;
export const P99_AIM_MS = 250;

const percentile = (sorted: Float64Array, p: number) => (sorted.length === 0 ? Number.NaN : sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!);

async function latencyRun(ctx: BenchContext, name: ApplicationName): Promise<LatencyResult> {
  const { latencyRate: rate, warmupSeconds, latencySeconds, partitions } = ctx.opts;
  const app = applications[name];
  const prefix = `${ctx.run}-lat-${name}`;
  const names = topicNames(prefix, [...app.inputs, ...app.outputs]);
  const outputs = app.outputs.map((c) => names[c.topic]!);
  await createTopics(ctx.admin, Object.values(names), partitions);
  const total = Math.ceil(rate * (warmupSeconds + latencySeconds));
  const records: ScenarioRecord[] = [...generateScenario(name, { count: total, seed: ctx.opts.seed, duplicates: DUPLICATES, malformed: 0 })];
  const serdeFor = serdesOf(ctx);

  const spec: AppWorkerSpec = {
    label: `latency-${name}`,
    app: name,
    mode: 'serve',
    brokers: ctx.brokers,
    registryUrl: ctx.registryUrl!,
    applicationId: prefix,
    topics: names,
    partitions,
    timeoutMs: ctx.opts.timeoutMs,
  };
  const child = startChild<AppWorkerResult>('app-worker.ts', spec, spec.label);
  const consumer = ctx.kafka.consumer({ groupId: `${prefix}-reader`, readUncommitted: false, maxWaitTimeInMs: 50, allowAutoTopicCreation: false });
  const producer = ctx.kafka.producer({ allowAutoTopicCreation: false });
  // (output timestamp, latency) of every output seen
  const stamps: number[] = [];
  const latencies: number[] = [];
  try {
    await child.ready;
    await producer.connect();
    await consumer.connect();
    const joined = new Promise<void>((res) => consumer.on(consumer.events.GROUP_JOIN, () => res()));
    await consumer.subscribe({ topics: outputs, fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        const now = Date.now();
        for (const m of batch.messages) {
          const ts = Number(m.timestamp);
          stamps.push(ts);
          latencies.push(now - ts);
        }
      },
    });
    await joined;

    log(`latency ${name}: ${int(rate)} events/s for ${warmupSeconds} s warm-up + ${latencySeconds} s...`);
    const start = Date.now();
    const measureFrom = start + warmupSeconds * 1000;
    let sent = 0;
    let sentAtMeasureFrom: number | null = null;
    while (sent < total) {
      const due = Math.min(total, Math.floor(((Date.now() - start) * rate) / 1000));
      if (due > sent) {
        const byTopic = new Map<string, Message[]>();
        const now = Date.now();
        if (sentAtMeasureFrom === null && now >= measureFrom) sentAtMeasureFrom = sent;
        for (; sent < due; sent++) {
          const r = records[sent]!;
          const topic = names[r.topic]!;
          const m = await encodeRecord({ topic, key: r.key, value: { ...r.value, eventTime: now }, timestamp: now }, serdeFor(r.topic), partitions);
          let list = byTopic.get(topic);
          if (!list) byTopic.set(topic, (list = []));
          list.push(m);
        }
        await producer.sendBatch({ topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })), acks: -1 });
      }
      await sleep(TICK_MS - ((Date.now() - start) % TICK_MS));
    }
    const sendEnd = Date.now();
    // the last outputs: wait until none arrived for 2 s (at most 60 s)
    for (let seen = -1, quietSince = Date.now(); Date.now() - quietSince < 2000 && Date.now() - sendEnd < 60_000; ) {
      if (stamps.length !== seen) {
        seen = stamps.length;
        quietSince = Date.now();
      }
      await sleep(100);
    }
    await consumer.stop();
    child.send('stop');
    const worker = await child.result;

    const window: number[] = [];
    for (let i = 0; i < stamps.length; i++) if (stamps[i]! >= measureFrom && stamps[i]! <= sendEnd) window.push(latencies[i]!);
    const sorted = Float64Array.from(window).sort();
    const measuredSeconds = (sendEnd - measureFrom) / 1000;
    const eventsMeasured = total - (sentAtMeasureFrom ?? total);
    const r: LatencyResult = {
      app: name,
      rate,
      sentRate: eventsMeasured / measuredSeconds,
      measuredSeconds,
      eventsMeasured,
      outputsMeasured: sorted.length,
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
      maxMs: sorted.length ? sorted[sorted.length - 1]! : Number.NaN,
      peakRssMb: worker.peakRssMb,
      cpuShare: worker.cpuSeconds / ((Date.now() - worker.startedAt) / 1000),
    };
    log(`latency ${name}: p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms over ${int(r.outputsMeasured)} outputs`);
    return r;
  } catch (err) {
    child.kill();
    throw err;
  } finally {
    await consumer.disconnect().catch(() => undefined);
    await producer.disconnect().catch(() => undefined);
    if (!ctx.opts.keep) await removeOwned(ctx.admin, `${prefix}-`, ctx.registry);
  }
}

export async function latencySection(ctx: BenchContext): Promise<SectionReport> {
  const results: LatencyResult[] = [];
  for (const name of ctx.opts.apps) results.push(await latencyRun(ctx, name));
  const head = ['application', 'events/s sent', 'seconds', 'events', 'outputs', 'p50 ms', 'p99 ms', 'max ms', 'peak RSS MB', 'worker CPU'];
  const body = results.map((r) => [
    r.app,
    int(r.sentRate),
    r.measuredSeconds.toFixed(1),
    int(r.eventsMeasured),
    int(r.outputsMeasured),
    String(r.p50Ms),
    String(r.p99Ms),
    String(r.maxMs),
    r.peakRssMb.toFixed(0),
    `${Math.round(100 * r.cpuShare)}%`,
  ]);
  const aims: Aim[] = results
    .filter((r) => r.app === 'trades')
    .flatMap((r) => [
      { what: `trades p99 latency at ${int(r.rate)}/s`, measured: r.p99Ms, target: P99_AIM_MS, unit: 'ms', cmp: '<=' as const },
      { what: 'trades worker peak RSS (steady load)', measured: r.peakRssMb, target: RSS_AIM_MB, unit: 'MB', cmp: '<=' as const },
    ]);
  const text = [
    `latency: ${int(ctx.opts.latencyRate)} events/s per application for ${ctx.opts.latencySeconds} s after a ${ctx.opts.warmupSeconds} s warm-up, one worker process (exactly-once, commit`,
    'interval 100 ms). Latency = event handed to the producer (its eventTime) → output seen by a read_committed consumer; one sample per output.',
    '',
    formatTable(head, body),
  ].join('\n');
  return {
    section: 'latency',
    text,
    json: results.map((r) => ({ ...r, sentRate: Math.round(r.sentRate), measuredSeconds: round(r.measuredSeconds, 2), peakRssMb: round(r.peakRssMb, 1), cpuShare: round(r.cpuShare, 3) })),
    aims,
  };
}
