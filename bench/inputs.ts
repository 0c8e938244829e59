/**
 * Bench input, encoded as `weir produce` encodes it (cli/commands/produce.ts encodeRecord: Avro through the
 * registry under `<bench topic>-value`, murmur2-partitioned by key), written fast (bench/produce.ts).
 * - `appInput`: an application's input topics with N events of its scenario (cli/generators/scenarios.ts, the
 *   generator `weir produce --generate` uses, with its default 5% re-sent duplicates), produced once per run
 *   and shared by the apps and scale sections;
 * - `produceRecords`: any catalog-typed records into bench topics (the sinks' input).
 */
import { encodeRecord } from '../cli/commands/produce.js';
import { generateScenario } from '../cli/generators/scenarios.js';
import { avroSerdesFor, type Application, type SerdeFor } from '../topologies/index.js';
import { createTopics, log } from './common.js';
import { inputTopicsOf, topicNames, type AppInput, type BenchContext } from './context.js';
import { produceFast, type TopicMessage } from './produce.js';

/** Share of re-sent events (same eventId) in the input, as `weir produce --generate` sends by default. */
export const DUPLICATES = 0.05;

export interface CatalogRecord {
  /** catalog topic (its contract gives the schema) */
  topic: string;
  key: string;
  value: unknown;
  timestamp?: number;
}

export function serdesOf(ctx: BenchContext): SerdeFor {
  if (!ctx.registry) throw new Error('this section needs the schema registry');
  return avroSerdesFor(ctx.registry);
}

async function* encoded(
  records: Iterable<CatalogRecord>,
  names: Readonly<Record<string, string>>,
  serdeFor: SerdeFor,
  partitions: number,
): AsyncGenerator<TopicMessage> {
  for (const r of records) {
    const topic = names[r.topic];
    if (!topic) throw new Error(`no bench topic for ${r.topic}`);
    yield { topic, message: await encodeRecord({ ...r, topic }, serdeFor(r.topic), partitions) };
  }
}

/** Encodes and sends `records` to the bench topics `names` gives for their catalog topics; returns how many. */
export function produceRecords(ctx: BenchContext, records: Iterable<CatalogRecord>, names: Readonly<Record<string, string>>): Promise<number> {
  // in order: one send at a time (an application's events depend on their order per key)
  return produceFast(ctx.kafka, encoded(records, names, serdesOf(ctx), ctx.opts.partitions), { inFlight: 1 });
}

/** The application's input topics holding `ctx.opts.events` events (made on first use). */
export async function appInput(ctx: BenchContext, app: Application): Promise<AppInput> {
  const made = ctx.inputs.get(app.name);
  if (made) return made;
  const names = topicNames(`${ctx.run}-in`, app.inputs);
  await createTopics(ctx.admin, inputTopicsOf(app, names), ctx.opts.partitions);
  const t0 = performance.now();
  const records = generateScenario(app.name, { count: ctx.opts.events, seed: ctx.opts.seed, duplicates: DUPLICATES, malformed: 0 });
  const n = await produceRecords(ctx, records, names);
  const s = (performance.now() - t0) / 1000;
  log(`${app.name}: produced ${n.toLocaleString('en-US')} events to ${inputTopicsOf(app, names).join(', ')} in ${s.toFixed(1)} s`);
  const input = { names, records: n };
  ctx.inputs.set(app.name, input);
  return input;
}
