import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { KeyValue, StoreBackend } from '../../state/store.js';
import { BufferedStore } from '../../state/buffered-store.js';
import { TypedKeyValueStore, prefixUpperBound } from '../../state/typed-store.js';
import { MemoryBackend } from '../../state/memory-backend.js';
import { RocksDbBackend } from '../../state/rocksdb-backend.js';
import { Serdes } from '../../runtime/serde.js';
import { WeirError } from '../../runtime/errors.js';

interface BackendFactory {
  kind: string;
  /** its data outlives close and reopen, and a second instance at the same location is locked out */
  persistent: boolean;
  /** committed keys the buffered store caches (small, so that the tests evict) */
  cacheSize?: number;
  /** A backend at the test's location; a second call reaches the same data where the backend persists (RocksDB). */
  create(location: string): StoreBackend;
}

const factories: BackendFactory[] = [
  // Nothing outlives a memory backend: a second one at the same location starts empty.
  { kind: 'memory', persistent: false, create: () => new MemoryBackend() },
  { kind: 'rocksdb', persistent: true, create: (location) => new RocksDbBackend(join(location, 'store')) },
  { kind: 'rocksdb with a 3-key read cache', persistent: true, cacheSize: 3, create: (location) => new RocksDbBackend(join(location, 'store')) },
];

async function collect<T>(iter: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of iter) out.push(x);
  return out;
}

const keys = <K, V>(entries: KeyValue<K, V>[]) => entries.map((e) => e.key);
const hex = (...bytes: number[]) => Buffer.from(bytes).toString('hex');

describe.each(factories)('key-value store on $kind', (factory) => {
  let location: string;
  let backend: StoreBackend;
  let buffered: BufferedStore;
  let store: TypedKeyValueStore<string, { n: number }>;
  const opened: StoreBackend[] = [];

  async function open(): Promise<void> {
    backend = factory.create(location);
    await backend.open();
    opened.push(backend);
    buffered = new BufferedStore('counts', backend, factory.cacheSize ?? 0);
    store = new TypedKeyValueStore('counts', buffered, Serdes.string(), Serdes.json<{ n: number }>());
  }

  async function commit(offset: number | null = null): Promise<void> {
    buffered.prepare();
    await buffered.complete(offset);
  }

  /** A store over the same buffered store with raw byte keys (hex-encoded for readable assertions). */
  function bytesStore() {
    return new TypedKeyValueStore('counts', buffered, Serdes.bytes(), Serdes.string());
  }

  beforeEach(async () => {
    location = await mkdtemp(join(tmpdir(), 'weir-kv-'));
    await open();
  });

  afterEach(async () => {
    for (const b of opened.splice(0)) await b.close();
    await rm(location, { recursive: true, force: true });
  });

  it('gets, puts and deletes', async () => {
    expect(await store.get('a')).toBeUndefined();
    store.put('a', { n: 1 });
    expect(await store.get('a')).toEqual({ n: 1 });
    store.delete('a');
    expect(await store.get('a')).toBeUndefined();
    // Deleting a key that never existed is fine.
    store.delete('never');
    await commit();
    expect(await store.get('a')).toBeUndefined();
  });

  it('overwrites, before and after a commit', async () => {
    store.put('a', { n: 1 });
    store.put('a', { n: 2 });
    expect(await store.get('a')).toEqual({ n: 2 });
    await commit();
    expect(await store.get('a')).toEqual({ n: 2 });
    store.put('a', { n: 3 });
    expect(await store.get('a')).toEqual({ n: 3 });
    await commit();
    expect(await store.get('a')).toEqual({ n: 3 });
  });

  it('reads its own uncommitted writes, which the backend does not have yet', async () => {
    store.put('a', { n: 1 });
    expect(await store.get('a')).toEqual({ n: 1 });
    expect(await backend.get(Buffer.from('a'))).toBeUndefined();
    expect(buffered.dirtyCount).toBe(1);
    await commit();
    expect(buffered.dirtyCount).toBe(0);
    expect(JSON.parse((await backend.get(Buffer.from('a')))!.toString())).toEqual({ n: 1 });
  });

  it('hides a committed value behind an uncommitted delete, in reads and scans', async () => {
    store.put('a', { n: 1 });
    store.put('b', { n: 2 });
    await commit();
    store.delete('a');
    expect(await store.get('a')).toBeUndefined();
    expect(keys(await collect(store.all()))).toEqual(['b']);
    expect(await backend.get(Buffer.from('a'))).toBeDefined();
    await commit();
    expect(await backend.get(Buffer.from('a'))).toBeUndefined();
    expect(keys(await collect(store.all()))).toEqual(['b']);
  });

  it('ranges with inclusive and open bounds', async () => {
    for (const k of ['a', 'b', 'c', 'd']) store.put(k, { n: 0 });
    await commit();
    store.put('bb', { n: 1 });
    store.put('e', { n: 1 });
    expect(keys(await collect(store.range('b', 'd')))).toEqual(['b', 'bb', 'c', 'd']);
    expect(keys(await collect(store.range('bb', 'c')))).toEqual(['bb', 'c']);
    expect(keys(await collect(store.range('c')))).toEqual(['c', 'd', 'e']);
    expect(keys(await collect(store.range(undefined, 'b')))).toEqual(['a', 'b']);
    expect(keys(await collect(store.range()))).toEqual(['a', 'b', 'bb', 'c', 'd', 'e']);
    expect(keys(await collect(store.range('ba', 'bz')))).toEqual(['bb']);
    expect(keys(await collect(store.range('x', 'z')))).toEqual([]);
    // An empty string key is a real bound, not "no bound".
    expect(keys(await collect(store.range('', 'a')))).toEqual(['a']);
  });

  it('scans a prefix with the key serde or a given prefix serde', async () => {
    for (const k of ['a', 'a:1', 'a:2', 'ab', 'b:1']) store.put(k, { n: 0 });
    await commit();
    store.put('a:3', { n: 1 });
    store.delete('a:1');
    expect(keys(await collect(store.prefixScan('a:')))).toEqual(['a:2', 'a:3']);
    expect(keys(await collect(store.prefixScan('a')))).toEqual(['a', 'a:2', 'a:3', 'ab']);
    expect(keys(await collect(store.prefixScan(Buffer.from('b'), Serdes.bytes())))).toEqual(['b:1']);
    expect(keys(await collect(store.prefixScan('z')))).toEqual([]);
    expect(keys(await collect(store.prefixScan('')))).toEqual(['a', 'a:2', 'a:3', 'ab', 'b:1']);
  });

  it('scans prefixes ending in 0xff, and all-0xff prefixes with no upper bound', async () => {
    const raw = bytesStore();
    const committed = [[0x01, 0xff], [0x01, 0xff, 0x00], [0x02], [0xff]];
    const pending = [[0x01, 0xfe, 0xff], [0x02, 0x00], [0xff, 0xff], [0xff, 0xff, 0x01]];
    for (const k of committed) raw.put(Buffer.from(k), 'c');
    await commit();
    for (const k of pending) raw.put(Buffer.from(k), 'p');
    const scan = async (...prefix: number[]) => keys(await collect(raw.prefixScan(Buffer.from(prefix)))).map((k) => k.toString('hex'));

    // [0x02] is the upper bound of [0x01, 0xff] exactly, and must not be included.
    expect(await scan(0x01, 0xff)).toEqual([hex(0x01, 0xff), hex(0x01, 0xff, 0x00)]);
    expect(await scan(0x01)).toEqual([hex(0x01, 0xfe, 0xff), hex(0x01, 0xff), hex(0x01, 0xff, 0x00)]);
    expect(await scan(0xff)).toEqual([hex(0xff), hex(0xff, 0xff), hex(0xff, 0xff, 0x01)]);
    expect(await scan(0xff, 0xff)).toEqual([hex(0xff, 0xff), hex(0xff, 0xff, 0x01)]);
    expect(await scan(0x02)).toEqual([hex(0x02), hex(0x02, 0x00)]);

    expect(prefixUpperBound(Buffer.from([0x01, 0xff]))).toEqual(Buffer.from([0x02]));
    expect(prefixUpperBound(Buffer.from([0xff, 0xff]))).toBeNull();
    expect(prefixUpperBound(Buffer.alloc(0))).toBeNull();
  });

  it('scans everything in byte order of the keys, committed and pending merged', async () => {
    const raw = bytesStore();
    // UTF-16 order would put U+1F600 (a surrogate pair) before U+FF01; UTF-8 bytes put it after.
    const strings = ['\u{1F600}', '\uFF01', 'z', 'é', 'A', ''];
    const all = [...strings.map((s) => Buffer.from(s, 'utf8')), Buffer.from([0x80]), Buffer.from([0x7f]), Buffer.from([0x00]), Buffer.from([0xff, 0x00])];
    all.forEach((k, i) => {
      if (i % 2 === 0) raw.put(k, 'c');
    });
    await commit();
    all.forEach((k, i) => {
      if (i % 2 === 1) raw.put(k, 'p');
    });
    const expected = [...all].sort(Buffer.compare).map((k) => k.toString('hex'));
    expect(keys(await collect(raw.all())).map((k) => k.toString('hex'))).toEqual(expected);
    await commit();
    expect(keys(await collect(raw.all())).map((k) => k.toString('hex'))).toEqual(expected);
  });

  it('merges pending puts and deletes into committed entries', async () => {
    for (const k of ['a', 'c', 'e', 'g']) store.put(k, { n: 0 });
    await commit();
    store.put('b', { n: 1 }); // new, between committed keys
    store.put('c', { n: 1 }); // overrides
    store.delete('e'); // hides
    store.put('h', { n: 1 }); // after the last committed key
    store.delete('x'); // deletes nothing
    expect(await collect(store.all())).toEqual([
      { key: 'a', value: { n: 0 } },
      { key: 'b', value: { n: 1 } },
      { key: 'c', value: { n: 1 } },
      { key: 'g', value: { n: 0 } },
      { key: 'h', value: { n: 1 } },
    ]);
  });

  it('stops a scan early without disturbing the store', async () => {
    for (const k of ['a', 'b', 'c']) store.put(k, { n: 0 });
    await commit();
    for await (const e of store.all()) {
      if (e.key === 'b') break;
    }
    store.put('d', { n: 1 });
    await commit(5);
    expect(keys(await collect(store.all()))).toEqual(['a', 'b', 'c', 'd']);
  });

  it('prepares one change per key and completes them with the changelog offset', async () => {
    expect(await backend.changelogOffset()).toBeNull();
    store.put('a', { n: 1 });
    store.put('a', { n: 2 });
    store.put('b', { n: 1 });
    store.delete('b');
    store.delete('c');
    const changes = buffered.prepare();
    expect(buffered.state).toBe('PREPARED');
    expect(changes.map(([k, v]) => [k.toString(), v === null ? null : JSON.parse(v.toString())])).toEqual([
      ['a', { n: 2 }],
      ['b', null],
      ['c', null],
    ]);
    // Reads still see the prepared writes until they land.
    expect(await store.get('a')).toEqual({ n: 2 });
    await buffered.complete(42);
    expect(buffered.state).toBe('STARTED');
    expect(buffered.dirtyCount).toBe(0);
    expect(await backend.changelogOffset()).toBe(42);
    expect(await store.get('a')).toEqual({ n: 2 });

    // An empty transaction still moves the offset; null leaves it as it is.
    await commit(43);
    expect(await backend.changelogOffset()).toBe(43);
    store.put('z', { n: 9 });
    await commit(null);
    expect(await backend.changelogOffset()).toBe(43);
    expect(await store.get('z')).toEqual({ n: 9 });
  });

  it('drops uncommitted writes on abort, from STARTED or PREPARED', async () => {
    store.put('a', { n: 1 });
    await commit(1);
    store.put('a', { n: 2 });
    store.put('b', { n: 2 });
    buffered.abort();
    expect(buffered.dirtyCount).toBe(0);
    expect(await store.get('a')).toEqual({ n: 1 });
    expect(await store.get('b')).toBeUndefined();

    store.delete('a');
    buffered.prepare();
    buffered.abort();
    expect(buffered.state).toBe('STARTED');
    expect(await store.get('a')).toEqual({ n: 1 });
    expect(await backend.changelogOffset()).toBe(1);
    store.put('c', { n: 3 });
    await commit(2);
    expect(keys(await collect(store.all()))).toEqual(['a', 'c']);
  });

  it('throws on calls that do not fit the transaction state', async () => {
    await expect(buffered.complete(1)).rejects.toThrow(/Illegal state STARTED while complete/);
    store.put('a', { n: 1 });
    buffered.prepare();
    expect(() => store.put('b', { n: 1 })).toThrow(/Illegal state PREPARED while put/);
    expect(() => store.delete('a')).toThrow(WeirError);
    expect(() => buffered.prepare()).toThrow(/Illegal state PREPARED while prepare/);
    await expect(buffered.restore([], 1)).rejects.toThrow(/Illegal state PREPARED while restore/);
    await buffered.complete(1);
    store.put('b', { n: 1 });
    expect(buffered.dirtyCount).toBe(1);
  });

  it('marks the transaction FAILED when the write fails, until aborted', async () => {
    store.put('a', { n: 1 });
    buffered.prepare();
    await backend.close();
    await expect(buffered.complete(7)).rejects.toThrow(/not open/);
    expect(buffered.state).toBe('FAILED');
    expect(() => store.put('b', { n: 1 })).toThrow(/Illegal state FAILED while put/);
    await expect(store.get('a')).rejects.toThrow(/Illegal state FAILED while get/);
    await expect(buffered.complete(7)).rejects.toThrow(/Illegal state FAILED while complete/);
    buffered.abort();
    await backend.open();
    expect(buffered.state).toBe('STARTED');
    expect(await store.get('a')).toBeUndefined();
    expect(await backend.changelogOffset()).toBeNull();
  });

  it('restores changelog records with their offset, only while nothing is pending', async () => {
    await buffered.restore(
      [
        [Buffer.from('a'), Buffer.from('{"n":1}')],
        [Buffer.from('b'), Buffer.from('{"n":2}')],
      ],
      10,
    );
    await buffered.restore([[Buffer.from('a'), null]], 11);
    expect(await backend.changelogOffset()).toBe(11);
    expect(await collect(store.all())).toEqual([{ key: 'b', value: { n: 2 } }]);
    store.put('c', { n: 3 });
    await expect(buffered.restore([], 12)).rejects.toThrow(/uncommitted changes while restore/);
  });

  it('agrees with a plain map under random writes, commits and aborts', async () => {
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const committed = new Map<string, number>();
    let pending = new Map<string, number | null>();
    const view = () => {
      const m = new Map(committed);
      for (const [k, v] of pending) v === null ? m.delete(k) : m.set(k, v);
      return m;
    };
    const sortedKeys = (m: Map<string, number>) => [...m.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (let step = 0; step < 400; step++) {
      const k = `k${rand(30)}`;
      const r = rand(100);
      if (r < 55) {
        store.put(k, { n: step });
        pending.set(k, step);
      } else if (r < 85) {
        store.delete(k);
        pending.set(k, null);
      } else if (r < 95) {
        await commit(step);
        for (const [pk, v] of pending) v === null ? committed.delete(pk) : committed.set(pk, v);
        pending = new Map();
      } else {
        buffered.abort();
        pending = new Map();
      }
      if (step % 20 === 0) {
        const expected = view();
        expect(keys(await collect(store.all()))).toEqual(sortedKeys(expected));
        const from = `k${rand(30)}`;
        const to = `k${rand(30)}`;
        expect(keys(await collect(store.range(from, to)))).toEqual(sortedKeys(expected).filter((x) => x >= from && x <= to));
        expect(keys(await collect(store.prefixScan('k1')))).toEqual(sortedKeys(expected).filter((x) => x.startsWith('k1')));
        expect(await store.get(k)).toEqual(expected.has(k) ? { n: expected.get(k) } : undefined);
      }
    }
  });

  it(`${factory.persistent ? 'keeps' : 'loses'} data and offset across close and reopen`, async () => {
    store.put('a', { n: 1 });
    store.put('b', { n: 2 });
    await commit(100);
    store.delete('a');
    await commit(101);
    store.put('uncommitted', { n: 0 });
    await backend.close();
    opened.splice(0);

    await open();
    if (factory.persistent) {
      expect(await backend.changelogOffset()).toBe(101);
      expect(await collect(store.all())).toEqual([{ key: 'b', value: { n: 2 } }]);
    } else {
      // A memory store restores everything from its changelog's start.
      expect(await backend.changelogOffset()).toBeNull();
      expect(await collect(store.all())).toEqual([]);
    }
  });

  it(`${factory.persistent ? 'names the directory when another instance holds its lock' : 'has no lock to hold'}`, async () => {
    const second = factory.create(location);
    const err = await second.open().then(
      () => null,
      (e: unknown) => e,
    );
    if (!factory.persistent) {
      expect(err).toBeNull();
      await second.close();
      return;
    }
    const dir = (second as RocksDbBackend).dir;
    expect(err).toBeInstanceOf(WeirError);
    expect((err as WeirError).message).toContain(dir);
    expect((err as WeirError).message).toMatch(/locked/);
    expect((err as WeirError).retriable).toBe(true);
  });

  it('removes its data on destroy and opens empty again', async () => {
    store.put('a', { n: 1 });
    await commit(3);
    buffered.reset(); // as the store manager does before it wipes a store
    await backend.destroy();
    await backend.open();
    expect(await backend.changelogOffset()).toBeNull();
    expect(await store.get('a')).toBeUndefined();
  });
});

describe('the read cache of committed entries', () => {
  /** A memory backend that counts its reads and can hold one read until released. */
  class CountingBackend extends MemoryBackend {
    reads = 0;
    hold: Promise<void> | null = null;
    override async get(key: Buffer): Promise<Buffer | undefined> {
      this.reads++;
      const value = await super.get(key);
      if (this.hold) await this.hold;
      return value;
    }
  }
  const b = (s: string) => Buffer.from(s);
  const str = (v: Buffer | undefined) => v?.toString();
  let backend: CountingBackend;
  let store: BufferedStore;
  const commit = async () => {
    store.prepare();
    await store.complete(null);
  };

  beforeEach(async () => {
    backend = new CountingBackend();
    await backend.open();
    store = new BufferedStore('cached', backend, 2);
  });

  it('answers gets of committed keys from memory, and the least recently used key is evicted', async () => {
    store.put(b('a'), b('1'));
    store.put(b('b'), b('2'));
    store.put(b('c'), b('3'));
    await commit();
    expect(str(await store.get(b('b')))).toBe('2');
    expect(str(await store.get(b('c')))).toBe('3');
    expect(backend.reads).toBe(0); // the last two committed are cached
    expect(str(await store.get(b('a')))).toBe('1'); // evicted: read from the backend, cached again
    expect(backend.reads).toBe(1);
    expect(str(await store.get(b('a')))).toBe('1');
    expect(backend.reads).toBe(1);
    expect(await store.get(b('never'))).toBeUndefined(); // absence is cached too
    expect(await store.get(b('never'))).toBeUndefined();
    expect(backend.reads).toBe(2);
  });

  it('never serves an uncommitted or aborted value, and a committed delete hides the key', async () => {
    store.put(b('a'), b('1'));
    await commit();
    store.put(b('a'), b('2'));
    expect(str(await store.get(b('a')))).toBe('2');
    store.abort();
    expect(str(await store.get(b('a')))).toBe('1');
    store.delete(b('a'));
    await commit();
    expect(await store.get(b('a'))).toBeUndefined();
    expect(backend.reads).toBe(0);
  });

  it('a read that started before a commit does not put its older value in the cache', async () => {
    let release!: () => void;
    backend.hold = new Promise<void>((r) => (release = r));
    const before = store.get(b('a')); // reads "absent" from the backend, then waits
    store.put(b('a'), b('new'));
    await commit();
    backend.hold = null;
    release();
    expect(await before).toBeUndefined();
    expect(str(await store.get(b('a')))).toBe('new');
  });

  it('restore and reset drop what the cache holds of the keys they change', async () => {
    store.put(b('a'), b('1'));
    await commit();
    await store.restore([[b('a'), b('restored')]], 10);
    expect(str(await store.get(b('a')))).toBe('restored');
    store.reset();
    await backend.destroy();
    await backend.open();
    expect(await store.get(b('a'))).toBeUndefined();
  });
});
