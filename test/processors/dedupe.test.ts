import { describe, expect, it } from 'vitest';
import { TopologyBuilder, TopologyTestDriver, Serdes, type Record } from '../../index.js';
import { DedupeProcessor, dedupeStore, duplicatesCounted } from '../../processors/dedupe.js';

interface Ev {
  eventId: string;
  n: number;
}

function topology(retentionMs: number) {
  return new TopologyBuilder()
    .addSource('in', { topics: ['in'], keySerde: Serdes.string(), valueSerde: Serdes.json<Ev>() })
    .addProcessor('dedupe', () => new DedupeProcessor<string, Ev>({ storeName: 'seen', idOf: (r: Record<string, Ev>) => r.value.eventId, retentionMs, cleanupIntervalMs: 1000 }), 'in')
    .addStateStore(dedupeStore('seen', 'memory'), 'dedupe')
    .addSink('out', { topic: 'out', keySerde: Serdes.string(), valueSerde: Serdes.json<Ev>() }, 'dedupe')
    .build();
}

describe('DedupeProcessor', () => {
  it('forwards each event id once and counts the duplicates', async () => {
    const driver = new TopologyTestDriver(topology(60_000));
    const ids = ['a', 'b', 'a', 'c', 'b', 'a'];
    for (const [i, id] of ids.entries()) await driver.pipeInput<string, Ev>('in', 'k', { eventId: id, n: i }, { timestamp: 1000 + i });
    const out = await driver.readOutput<string, Ev>('out', Serdes.string(), Serdes.json());
    expect(out.map((r) => r.value)).toEqual([
      { eventId: 'a', n: 0 },
      { eventId: 'b', n: 1 },
      { eventId: 'c', n: 3 },
    ]);
    expect(await duplicatesCounted(await driver.getStore('seen'))).toBe(3);
  });

  it('forgets ids once stream time passes the retention window', async () => {
    const driver = new TopologyTestDriver(topology(10_000));
    await driver.pipeInput<string, Ev>('in', 'k', { eventId: 'a', n: 1 }, { timestamp: 1_000 });
    await driver.pipeInput<string, Ev>('in', 'k', { eventId: 'a', n: 2 }, { timestamp: 5_000 }); // duplicate, inside the window
    await driver.pipeInput<string, Ev>('in', 'k', { eventId: 'z', n: 3 }, { timestamp: 20_000 }); // moves stream time past 1,000 + 10,000
    await driver.pipeInput<string, Ev>('in', 'k', { eventId: 'a', n: 4 }, { timestamp: 20_001 }); // 'a' was forgotten: forwarded again
    const out = await driver.readOutput<string, Ev>('out', Serdes.string(), Serdes.json());
    expect(out.map((r) => r.value.n)).toEqual([1, 3, 4]);
    const store = await driver.getStore<string, number>('seen');
    const keys: string[] = [];
    for await (const { key } of store.all()) keys.push(key);
    expect(keys.filter((k) => k.startsWith('i:')).sort()).toEqual(['i:a', 'i:z']);
    expect(await duplicatesCounted(store)).toBe(1);
  });
});
