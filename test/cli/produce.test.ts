import { afterAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import { PartitionReader, type RawMessage } from '../../runtime/partition-reader.js';
import { partitionForKey } from '../../runtime/partitioner.js';
import { avroSerde } from '../../schemas/avro-serde.js';
import { SchemaRegistryClient } from '../../schemas/registry-client.js';
import { contractOf } from '../../schemas/catalog.js';
import { ccompatUrl } from '../../infra/registry.js';
import type { TradeEvent } from '../../schemas/types.js';
import { kafka, withAdmin } from '../helpers/kafka.js';
import { cliEnv, removeCliDirs, hasStack, lines, weir } from './cli.js';

const env = cliEnv('clitest-produce-');
afterAll(removeCliDirs);

async function endOffsets(topic: string): Promise<Map<number, number>> {
  return withAdmin(async (admin) => {
    if (!(await admin.listTopics()).includes(topic)) return new Map();
    return new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, Number(o.high)]));
  });
}

/** The records written to `topic` since `from`, with their partitions. */
async function since(topic: string, from: Map<number, number>): Promise<Array<RawMessage & { partition: number }>> {
  const reader = new PartitionReader(kafka());
  const out: Array<RawMessage & { partition: number }> = [];
  try {
    for (const [partition, end] of await endOffsets(topic)) {
      const start = from.get(partition) ?? 0;
      if (end > start) await reader.read(topic, partition, start, (ms) => void out.push(...ms.map((m) => ({ ...m, partition }))));
    }
  } finally {
    await reader.close();
  }
  return out;
}

describe('weir produce (real broker and registry)', () => {
  it('produces NDJSON from stdin, decimals exact at the schema scale, keyed and partitioned as the catalog says', async () => {
    const id = randomUUID().slice(0, 8);
    const account = `ACC-CLI-${id}`;
    const ndjson = [
      // the value itself; times as ISO strings
      JSON.stringify({ eventId: `${id}-1`, accountId: account, tradeId: `T-${id}`, type: 'NEW', version: 1, instrument: 'AAPL', side: 'BUY', quantity: '10', price: '101.25', currency: 'USD', tradeTime: '2026-01-05T09:00:00Z', eventTime: '2026-01-05T09:00:01.500Z' }),
      '',
      // an envelope with its own timestamp; times as ms, decimals with trailing zeros and an exponent
      JSON.stringify({ key: account, timestamp: 1_767_604_000_000, value: { eventId: `${id}-2`, accountId: account, tradeId: `T-${id}`, type: 'AMEND', version: 2, instrument: 'AAPL', side: 'BUY', quantity: '1.25E+1', price: '101.250000', currency: 'USD', tradeTime: 1_767_603_600_000, eventTime: 1_767_603_601_000 } }),
    ].join('\n');
    const before = await endOffsets('trades');
    const r = await weir(['produce', 'trades'], env, { input: `${ndjson}\n` });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^produced 2 records to trades in [\d.]+ s/m);

    const written = (await since('trades', before)).filter((m) => m.key?.toString() === account);
    expect(written).toHaveLength(2);
    const partitions = (await endOffsets('trades')).size;
    expect(new Set(written.map((m) => m.partition))).toEqual(new Set([partitionForKey(Buffer.from(account), partitions)]));
    const serde = avroSerde<TradeEvent>(new SchemaRegistryClient({ url: ccompatUrl(inject('schemaRegistryUrl')) }), contractOf('trades').valueSchema);
    const [first, second] = await Promise.all(written.map((m) => serde.deserialize(m.value!, { topic: 'trades' })));
    expect(first).toMatchObject({ price: 101_250_000n, quantity: 100_000n, tradeTime: Date.parse('2026-01-05T09:00:00Z'), eventTime: Date.parse('2026-01-05T09:00:01.500Z') });
    expect(second).toMatchObject({ price: 101_250_000n, quantity: 125_000n, version: 2 });
    expect(written.map((m) => Number(m.timestamp))).toEqual([Date.parse('2026-01-05T09:00:01.500Z'), 1_767_604_000_000]);
  });

  it('stops at a wrong line with one sentence naming the line and the field', async () => {
    const good = { eventId: 'x', accountId: 'A', tradeId: 'T', type: 'NEW', version: 1, instrument: 'AAPL', side: 'BUY', quantity: '1', price: '1', currency: 'USD', tradeTime: 1, eventTime: 1 };
    const cases: Array<[string, RegExp]> = [
      [`${JSON.stringify(good)}\n${JSON.stringify({ ...good, price: '1.0000001' })}`, /^weir: line 2 of stdin: field 'price': '1\.0000001' has more than 6 decimal places; it cannot be held exactly at scale 6$/],
      [JSON.stringify({ ...good, side: 'HOLD' }), /^weir: line 1 of stdin: field 'side': "HOLD" is not one of BUY, SELL$/],
      [JSON.stringify({ ...good, tradeTime: 'soon' }), /^weir: line 1 of stdin: field 'tradeTime': "soon" is not a time/],
      [JSON.stringify({ ...good, venue: 'XLON' }), /^weir: line 1 of stdin: field 'venue' is not in schema TradeEvent/],
      ['{"eventId": ', /^weir: line 1 of stdin is not JSON/],
    ];
    const results = await Promise.all(cases.map(([input]) => weir(['produce', 'trades'], env, { input: `${input}\n` })));
    for (const [i, r] of results.entries()) {
      expect(r.code, r.stderr).toBe(1);
      // Notes about the topic (e.g. an existing topic's partition count, left by another test) may come first;
      // the failure itself is exactly one sentence.
      expect(lines(r.stderr).filter((l) => !l.startsWith('topic '))).toEqual([expect.stringMatching(cases[i]![1])]);
      expect(hasStack(r.stderr)).toBe(false);
    }
  });

  it('generates one topic of a scenario when asked, exactly --count records, paced by --rate', async () => {
    const before = await endOffsets('conversation-events');
    const r = await weir(['produce', 'conversation-events', '--generate', 'routing', '--count', '30', '--rate', '20', '--seed', '7'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^produced 30 records to conversation-events in ([\d.]+) s .*seed 7$/m);
    const secs = Number(/in ([\d.]+) s/.exec(r.stdout)![1]);
    expect(secs).toBeGreaterThanOrEqual(1.3); // 30 records at 20/s: the last is due after 1.45 s
    expect(await since('conversation-events', before)).toHaveLength(30);
  });
});
