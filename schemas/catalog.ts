/**
 * The Avro contracts of the three applications: one entry per topic, naming its key, its value
 * schema (a `.avsc` file under `schemas/avro/`, loaded once when this module is first imported)
 * and the registry subject (TopicNameStrategy: `<topic>-value`).
 *
 * Keys are plain UTF-8 strings (not Avro); `key` says what the string is.
 */
import { readFileSync } from 'node:fs';

export interface TopicContract {
  topic: string;
  /** what the record key is, e.g. 'tenantId' ('accountId|instrument' for positions) */
  key: string;
  keyFormat: 'string';
  /** file name under schemas/avro/, e.g. 'trade-event.avsc' */
  valueSchemaFile: string;
  /** the parsed .avsc */
  valueSchema: object;
  compacted: boolean;
  role: 'input' | 'output';
  application: 'routing' | 'trades' | 'payments';
}

/** Directory of the `.avsc` files, as a file URL (relative to this module). */
export const avroSchemaDir = new URL('./avro/', import.meta.url);

function loadSchema(file: string): object {
  const url = new URL(file, avroSchemaDir);
  let text: string;
  try {
    text = readFileSync(url, 'utf8');
  } catch (err) {
    throw new Error(`cannot read Avro schema ${file}: ${(err as Error).message}`);
  }
  try {
    return deepFreeze(JSON.parse(text) as object);
  } catch (err) {
    throw new Error(`Avro schema ${file} is not valid JSON: ${(err as Error).message}`);
  }
}

/** The schemas are shared by every user of the catalog: nobody may edit them in place. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

type ContractSpec = Omit<TopicContract, 'valueSchema' | 'keyFormat'>;

const specs: readonly ContractSpec[] = [
  // Conversation routing: agents and conversations of one tenant are co-partitioned (key = tenantId).
  { topic: 'agent-events', key: 'tenantId', valueSchemaFile: 'agent-event.avsc', compacted: false, role: 'input', application: 'routing' },
  { topic: 'conversation-events', key: 'tenantId', valueSchemaFile: 'conversation-event.avsc', compacted: false, role: 'input', application: 'routing' },
  { topic: 'routing-decisions', key: 'tenantId', valueSchemaFile: 'routing-decision.avsc', compacted: false, role: 'output', application: 'routing' },
  // Trades: one account's trades stay in order (key = accountId).
  { topic: 'trades', key: 'accountId', valueSchemaFile: 'trade-event.avsc', compacted: false, role: 'input', application: 'trades' },
  { topic: 'positions', key: 'accountId|instrument', valueSchemaFile: 'position.avsc', compacted: true, role: 'output', application: 'trades' },
  { topic: 'ledger-entries', key: 'accountId', valueSchemaFile: 'ledger-entry.avsc', compacted: false, role: 'output', application: 'trades' },
  // Payments: a payment and its settlement are co-partitioned (key = paymentId).
  { topic: 'payments', key: 'paymentId', valueSchemaFile: 'payment.avsc', compacted: false, role: 'input', application: 'payments' },
  { topic: 'settlements', key: 'paymentId', valueSchemaFile: 'settlement.avsc', compacted: false, role: 'input', application: 'payments' },
  { topic: 'reconciliations', key: 'paymentId', valueSchemaFile: 'reconciliation.avsc', compacted: false, role: 'output', application: 'payments' },
];

export const topicContracts: readonly TopicContract[] = Object.freeze(
  specs.map((spec) =>
    Object.freeze({ ...spec, keyFormat: 'string' as const, valueSchema: loadSchema(spec.valueSchemaFile) }),
  ),
);

const byTopic: ReadonlyMap<string, TopicContract> = new Map(topicContracts.map((c) => [c.topic, c]));

/** The contract of `topic`; throws, listing the known topics, for any other name. */
export function contractOf(topic: string): TopicContract {
  const contract = byTopic.get(topic);
  if (!contract) {
    throw new Error(`unknown topic ${JSON.stringify(topic)}: known topics are ${[...byTopic.keys()].join(', ')}`);
  }
  return contract;
}

/** Schema-registry subject of a topic's value schema (TopicNameStrategy); works for any topic name. */
export function subjectOf(topic: string): string {
  return `${topic}-value`;
}
