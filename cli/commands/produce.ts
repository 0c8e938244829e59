/**
 * `weir produce`: records into the catalog's topics, encoded with their Avro schemas through the registry.
 * - from NDJSON (`--file`, or stdin): one value per line (decimals as strings, times as ms or ISO), or an envelope
 *   `{"key": …, "value": {…}, "timestamp": …}`; the key is the catalog's (tenantId, accountId, paymentId) unless
 *   the envelope gives one; the record timestamp is the envelope's, else the value's eventTime;
 * - from a scenario (`--generate`): see cli/generators/scenarios.ts;
 * - creates missing topics (as `weir deploy` would) and registers the topics' schemas through the compatibility
 *   gate first; partitions by murmur2 of the key, as the Java client and weir's own sinks do;
 * - `--rate` paces the records; progress on stderr, the summary on stdout; Ctrl-C stops after the records sent.
 */
import fs from 'node:fs';
import readline from 'node:readline';
import type { Message, Producer } from 'kafkajs';
import { contractOf, subjectOf, topicContracts, type TopicContract } from '../../schemas/catalog.js';
import { registerSchemas } from '../../schemas/registration.js';
import { avroSerdesFor } from '../../topologies/index.js';
import { partitionForKey } from '../../runtime/partitioner.js';
import { AvroEncodeError, DecimalError } from '../../schemas/errors.js';
import { InputError, UsageError } from '../errors.js';
import { note, out, positiveInt, positiveNumber, ratio, seconds, settings, sleep } from '../common.js';
import { resolveServices } from '../services.js';
import { ensureTopics } from '../topics.js';
import { startProgress } from '../progress.js';
import { jsonToAvroValue, JsonValueError, recordFields, timestampMillis } from '../json-values.js';
import { generateScenario, SCENARIOS, scenarioTopics, type RecordKind, type ScenarioName } from '../generators/scenarios.js';

export interface ProduceFlags {
  file?: string;
  generate?: string;
  count?: string;
  rate?: string;
  duplicates?: string;
  malformed?: string;
  seed?: string;
}

interface OutgoingRecord {
  topic: string;
  key: string;
  value: unknown;
  timestamp?: number;
  kind: RecordKind;
  corrupt?: 'not-avro' | 'truncated';
  /** Where it came from, for messages: "line 12 of trades.ndjson". */
  origin?: string;
}

interface Plan {
  topics: TopicContract[];
  total?: number;
  records: AsyncIterable<OutgoingRecord> | Iterable<OutgoingRecord>;
  seed?: number;
  describe: string;
}

export async function produceCommand(topicArg: string | undefined, flags: ProduceFlags): Promise<void> {
  const plan = await planOf(topicArg, flags);
  const rate = flags.rate === undefined ? undefined : positiveNumber('--rate', flags.rate);
  const s = settings();
  const services = await resolveServices(s, note);

  const admin = await services.admin();
  try {
    const coPartitioned = [...new Set(plan.topics.map((c) => c.application))].map((app) =>
      topicContracts.filter((c) => c.application === app && c.role === 'input').map((c) => c.topic),
    );
    const report = await ensureTopics(admin, plan.topics, { partitions: s.WEIR_PARTITIONS, coPartitioned });
    for (const c of report.created) note(`created topic ${c}`);
    for (const n of report.notes) note(n);
    const partitions = report.partitions;

    // The compatibility gate first: a refused schema stops here with its subject and field.
    await registerSchemas(
      services.registry,
      plan.topics.map((c) => ({ subject: subjectOf(c.topic), schema: c.valueSchema })),
    );
    const serdeFor = avroSerdesFor(services.registry);

    const producer = services.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
    await producer.connect();
    try {
      await send(producer, plan, partitions, (topic) => serdeFor(topic), rate);
    } finally {
      await producer.disconnect().catch(() => undefined);
    }
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

async function planOf(topicArg: string | undefined, flags: ProduceFlags): Promise<Plan> {
  const count = flags.count === undefined ? undefined : positiveInt('--count', flags.count);
  if (flags.generate !== undefined) {
    if (flags.file !== undefined) throw new UsageError('give either --file or --generate, not both');
    const scenario = flags.generate as ScenarioName;
    if (!(SCENARIOS as readonly string[]).includes(scenario)) {
      throw new UsageError(`unknown scenario '${flags.generate}' for --generate; the scenarios are ${SCENARIOS.join(', ')}`);
    }
    const inputs = scenarioTopics[scenario];
    if (topicArg !== undefined && topicArg !== scenario && !inputs.includes(topicArg)) {
      throw new UsageError(`the ${scenario} scenario produces to ${inputs.join(' and ')}, not '${topicArg}'`);
    }
    const topics = topicArg === undefined || topicArg === scenario ? inputs : [topicArg];
    const seed = flags.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : positiveIntOrZero('--seed', flags.seed);
    const total = count ?? 1000;
    const records = generateScenario(scenario, {
      count: total,
      seed,
      topics,
      duplicates: flags.duplicates === undefined ? 0.05 : ratio('--duplicates', flags.duplicates),
      malformed: flags.malformed === undefined ? 0 : ratio('--malformed', flags.malformed),
    });
    return { topics: topics.map(contractOf), total, records, seed, describe: `the ${scenario} scenario` };
  }
  for (const f of ['duplicates', 'malformed', 'seed'] as const) {
    if (flags[f] !== undefined) throw new UsageError(`--${f} goes with --generate; an NDJSON input is produced as it is`);
  }
  if (topicArg === undefined) throw new UsageError('give the topic to produce to (e.g. weir produce trades --file trades.ndjson), or --generate <scenario>');
  const contract = topicContracts.find((c) => c.topic === topicArg);
  if (!contract) {
    throw new UsageError(`topic '${topicArg}' is not in the catalog, so it has no schema to encode with; the topics are ${topicContracts.map((c) => c.topic).join(', ')}`);
  }
  const fromStdin = flags.file === undefined || flags.file === '-';
  if (fromStdin && process.stdin.isTTY) throw new UsageError('give --file <path>, pipe NDJSON on stdin, or --generate <scenario>');
  let total: number | undefined;
  if (!fromStdin) {
    if (!fs.existsSync(flags.file!)) throw new UsageError(`--file ${flags.file}: no such file`);
    total = await countLines(flags.file!);
    if (count !== undefined) total = Math.min(total, count);
  }
  const name = fromStdin ? 'stdin' : flags.file!;
  return {
    topics: [contract],
    total,
    records: ndjsonRecords(contract, fromStdin ? process.stdin : fs.createReadStream(flags.file!), name, count),
    describe: name,
  };
}

function positiveIntOrZero(option: string, text: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new UsageError(`${option} takes a whole number >= 0, not '${text}'`);
  return Number(text);
}

async function countLines(file: string): Promise<number> {
  let n = 0;
  const rl = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
  for await (const line of rl) if (line.trim() !== '') n++;
  return n;
}

async function* ndjsonRecords(contract: TopicContract, input: NodeJS.ReadableStream, name: string, limit?: number): AsyncGenerator<OutgoingRecord> {
  const fields = new Set(recordFields(contract.valueSchema));
  const rl = readline.createInterface({ input, crlfDelay: Infinity });
  let lineNo = 0;
  let n = 0;
  for await (const line of rl) {
    lineNo++;
    if (line.trim() === '') continue;
    if (limit !== undefined && n >= limit) break;
    const origin = `line ${lineNo} of ${name}`;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (err) {
      throw new InputError(`${origin} is not JSON: ${(err as Error).message}`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new InputError(`${origin} is not a JSON object`);
    const obj = json as Record<string, unknown>;
    // An envelope: {"value": {...}} with optional key/timestamp, where the schema has no field named "value".
    const envelope = !fields.has('value') && typeof obj.value === 'object' && obj.value !== null && Object.keys(obj).every((k) => ['key', 'value', 'timestamp'].includes(k));
    const valueJson = envelope ? obj.value : obj;
    let value: Record<string, unknown>;
    try {
      value = jsonToAvroValue(contract.valueSchema, valueJson) as Record<string, unknown>;
    } catch (err) {
      if (err instanceof JsonValueError) throw new InputError(`${origin}: ${err.message}`);
      throw err;
    }
    let key: string;
    if (envelope && obj.key !== undefined) {
      if (typeof obj.key !== 'string') throw new InputError(`${origin}: the envelope's key must be a string`);
      key = obj.key;
    } else {
      key = keyOf(contract, value, origin);
    }
    let timestamp: number | undefined;
    try {
      if (envelope && obj.timestamp !== undefined) timestamp = timestampMillis(obj.timestamp, 'timestamp');
    } catch (err) {
      throw new InputError(`${origin}: ${(err as Error).message}`);
    }
    if (timestamp === undefined && typeof value.eventTime === 'number') timestamp = value.eventTime;
    n++;
    yield { topic: contract.topic, key, value, timestamp, kind: 'event', origin };
  }
}

/** The catalog's key: a field ('accountId') or fields joined by '|' ('accountId|instrument'). */
function keyOf(contract: TopicContract, value: Record<string, unknown>, origin: string): string {
  return contract.key
    .split('|')
    .map((f) => {
      const v = value[f];
      if (typeof v !== 'string' && typeof v !== 'number') throw new InputError(`${origin}: the key of ${contract.topic} is ${contract.key}, but ${f} is missing`);
      return String(v);
    })
    .join('|');
}

type ValueSerde = { serialize(value: unknown, ctx: { topic: string }): Buffer | Promise<Buffer> };
type SerdeOf = (topic: string) => ValueSerde;

/**
 * One record as Kafka sends it: the value encoded by `serde` for `r.topic` (Avro through the registry, subject
 * `<topic>-value`), spoilt as `r.corrupt` asks, partitioned by murmur2 of the key over `partitions`.
 * Also used by the bench (bench/inputs.ts) to pre-produce what `weir produce` would.
 */
export async function encodeRecord(
  r: { topic: string; key: string; value: unknown; timestamp?: number; corrupt?: 'not-avro' | 'truncated' },
  serde: ValueSerde,
  partitions: number,
): Promise<Message> {
  let bytes = await serde.serialize(r.value, { topic: r.topic });
  if (r.corrupt === 'not-avro') bytes = Buffer.from(JSON.stringify(r.value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
  else if (r.corrupt === 'truncated') bytes = bytes.subarray(0, Math.max(6, bytes.length - Math.ceil((bytes.length - 5) / 2)));
  const key = Buffer.from(r.key);
  return { key, value: bytes, partition: partitionForKey(key, partitions), timestamp: r.timestamp === undefined ? undefined : String(r.timestamp) };
}

async function send(producer: Producer, plan: Plan, partitions: Map<string, number>, serdeOf: SerdeOf, rate: number | undefined): Promise<void> {
  const batchSize = rate === undefined ? 500 : Math.max(1, Math.min(500, Math.ceil(rate / 20)));
  const progress = startProgress({ label: `producing (${plan.describe})`, unit: 'records', total: plan.total });
  const perTopic = new Map<string, number>();
  const perKind: Record<RecordKind, number> = { event: 0, duplicate: 0, malformed: 0 };
  let pending = new Map<string, Message[]>();
  let pendingCount = 0;
  let sent = 0;
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const started = Date.now();

  const flush = async () => {
    if (pendingCount === 0) return;
    const topicMessages = [...pending].map(([topic, messages]) => ({ topic, messages }));
    pending = new Map();
    const n = pendingCount;
    pendingCount = 0;
    await producer.sendBatch({ topicMessages, acks: -1 });
    sent += n;
    progress.update(sent);
  };

  try {
    let i = 0;
    for await (const r of plan.records) {
      if (interrupted) break;
      if (rate !== undefined) {
        const due = started + (i / rate) * 1000;
        const wait = due - Date.now();
        if (wait > 0) {
          await flush();
          await sleep(wait);
        }
      }
      i++;
      let message: Message;
      try {
        message = await encodeRecord(r, serdeOf(r.topic), partitions.get(r.topic)!);
      } catch (err) {
        if ((err instanceof AvroEncodeError || err instanceof DecimalError) && r.origin) throw new InputError(`${r.origin}: ${err.message}`);
        throw err;
      }
      let list = pending.get(r.topic);
      if (!list) pending.set(r.topic, (list = []));
      list.push(message);
      pendingCount++;
      perTopic.set(r.topic, (perTopic.get(r.topic) ?? 0) + 1);
      perKind[r.kind]++;
      if (pendingCount >= batchSize) await flush();
    }
    await flush();
  } finally {
    progress.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const elapsed = Date.now() - started;
  const topics = [...perTopic].map(([t, n]) => (perTopic.size > 1 ? `${t} (${n})` : t)).join(', ') || plan.topics.map((c) => c.topic).join(', ');
  const kinds = plan.seed === undefined ? '' : `: ${perKind.event} events, ${perKind.duplicate} duplicates, ${perKind.malformed} malformed; seed ${plan.seed}`;
  out(`${interrupted ? 'interrupted: ' : ''}produced ${sent} records to ${topics} in ${seconds(elapsed)} (${Math.round(sent / Math.max(0.001, elapsed / 1000))}/s)${kinds}`);
  if (interrupted) process.exitCode = 130;
}
