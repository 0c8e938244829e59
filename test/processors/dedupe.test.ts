import { describe, expect, it } from 'vitest';
import { TopologyBuilder, TopologyTestDriver, Serdes, type Record } from '../../index.js';
import { DedupeProcessor, dedupeStore, duplicatesCounted } from '../../processors/dedupe.js';

interface Ev {
  eventId: string;
  n: number;
}

function topology(retentionMs: number, cleanupIntervalMs = 1000) {
  return new TopologyBuilder()
    .addSource('in', { topics: ['in'], keySerde: Serdes.string(), valueSerde: Serdes.json<Ev>() })
    .addProcessor('dedupe', () => new DedupeProcessor<string, Ev>({ storeName: 'seen', idOf: (r: Record<string, Ev>) => r.value.eventId, retentionMs, cleanupIntervalMs }), 'in')
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

describe('DedupeProcessor retention is decided the same way in every run', () => {
  const RETENTION = 10_000;

  /** Ids re-sent at gaps around the retention window, with out-of-order timestamps (seeded, so every run is alike). */
  function input(): Array<{ ev: Ev; timestamp: number }> {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const out: Array<{ ev: Ev; timestamp: number }> = [];
    let t = 1_000;
    for (let n = 0; n < 3_000; n++) {
      t += Math.floor(rand() * 60);
      const timestamp = Math.max(0, t - (rand() < 0.2 ? Math.floor(rand() * 4_000) : 0)); // a fifth arrive late
      out.push({ ev: { eventId: `e${Math.floor(rand() * 400)}`, n }, timestamp });
    }
    return out;
  }

  /** The rule, written out on its own: an id seen at stream time s is a duplicate while stream time <= s + retention. */
  function expected(records: Array<{ ev: Ev; timestamp: number }>): number[] {
    const seenAt = new Map<string, number>();
    let streamTime = -1;
    const forwarded: number[] = [];
    for (const { ev, timestamp } of records) {
      streamTime = Math.max(streamTime, timestamp);
      const s = seenAt.get(ev.eventId);
      if (s !== undefined && s >= streamTime - RETENTION) continue;
      seenAt.set(ev.eventId, streamTime);
      forwarded.push(ev.n);
    }
    return forwarded;
  }

  async function run(records: Array<{ ev: Ev; timestamp: number }>, cleanupIntervalMs: number, restartEvery: number): Promise<{ forwarded: number[]; duplicates: number }> {
    let driver = new TopologyTestDriver(topology(RETENTION, cleanupIntervalMs));
    for (const [i, { ev, timestamp }] of records.entries()) {
      if (i > 0 && i % restartEvery === 0) {
        // A restart with no local state: the store comes back from the changelog, the task's stream time starts over.
        await driver.close();
        driver = new TopologyTestDriver(topology(RETENTION, cleanupIntervalMs), { log: driver.log });
      }
      await driver.pipeInput<string, Ev>('in', 'k', ev, { timestamp });
    }
    const forwarded = driver.log.records('out', 0).map((r) => (JSON.parse(r.value!.toString()) as Ev).n);
    const duplicates = await duplicatesCounted(await driver.getStore('seen'));
    await driver.close();
    return { forwarded, duplicates };
  }

  it('drops the same records whatever the cleanup interval and wherever restarts fall', async () => {
    const records = input();
    const want = expected(records);
    expect(want.length).toBeGreaterThan(400); // ids come back after their window as well as inside it
    expect(want.length).toBeLessThan(records.length - 400);
    for (const [cleanupIntervalMs, restartEvery] of [[100, Infinity], [1_000, 700], [7_000, 250], [50_000, 1_100]] as const) {
      const { forwarded, duplicates } = await run(records, cleanupIntervalMs, restartEvery);
      expect(forwarded, `cleanup every ${cleanupIntervalMs} ms, restart every ${restartEvery} records`).toEqual(want);
      expect(duplicates).toBe(records.length - want.length);
    }
  });
});
