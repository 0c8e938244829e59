import { createRequire } from 'node:module';
import { mkdir, rm } from 'node:fs/promises';
import type { ByteChange, StoreBackend } from './store.js';
import { WeirError } from '../runtime/errors.js';

/** The parts of the `rocksdb` package (abstract-leveldown 7, callback API) this backend uses. */
type Callback<T = void> = (err: Error | null | undefined, result?: T) => void;
interface BatchOp {
  type: 'put' | 'del';
  key: Buffer;
  value?: Buffer;
}
interface NativeIterator {
  next(cb: (err: Error | null | undefined, key?: Buffer, value?: Buffer) => void): void;
  end(cb: Callback): void;
}
interface NativeDb {
  open(options: { createIfMissing: boolean; errorIfExists: boolean }, cb: Callback): void;
  close(cb: Callback): void;
  getMany(keys: Buffer[], options: { asBuffer: true; fillCache?: boolean }, cb: Callback<(Buffer | undefined)[]>): void;
  batch(ops: BatchOp[], options: { sync: boolean }, cb: Callback): void;
  iterator(options: {
    gte?: Buffer;
    lte?: Buffer;
    lt?: Buffer;
    keyAsBuffer: true;
    valueAsBuffer: true;
  }): NativeIterator;
}
type RocksDbFactory = (location: string) => NativeDb;

const require = createRequire(import.meta.url);
const rocksdb = require('rocksdb') as RocksDbFactory;

// Metadata and user keys share one database, so the offset lands in the same WriteBatch as the data.
const META = 0x00;
const DATA = 0x01;
const DATA_END = Buffer.from([DATA + 1]);
const OFFSET_KEY = Buffer.concat([Buffer.from([META]), Buffer.from('changelog-offset', 'utf8')]);

function call<T = void>(fn: (cb: Callback<T>) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    fn((err, result) => (err ? reject(err) : resolve(result as T)));
  });
}

function dataKey(key: Buffer): Buffer {
  const out = Buffer.allocUnsafe(key.length + 1);
  out[0] = DATA;
  key.copy(out, 1);
  return out;
}

function encodeOffset(offset: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigInt64BE(BigInt(offset));
  return b;
}

/**
 * One RocksDB instance for one store of one task, in its own directory.
 * Responsible for:
 * - holding committed data only, under a data prefix, and the changelog offset it reflects under a metadata prefix;
 * - applying a commit's changes and its offset in one atomic WriteBatch, so a crash never separates them;
 * - scans in key byte order that always release their native iterator, also when the consumer stops early;
 * - saying clearly which directory is locked when another instance holds it.
 *
 * Writes are not fsynced: a batch lost in a machine crash loses its offset with it, and the restore
 * replays that stretch of the changelog.
 */
export class RocksDbBackend implements StoreBackend {
  readonly kind = 'rocksdb' as const;
  readonly persistent = true;

  private db: NativeDb | null = null;

  constructor(readonly dir: string) {}

  async open(): Promise<void> {
    if (this.db) return;
    await mkdir(this.dir, { recursive: true });
    const db = rocksdb(this.dir);
    try {
      await call((cb) => db.open({ createIfMissing: true, errorIfExists: false }, cb));
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (/\bLOCK\b|lock hold/i.test(message)) {
        throw new WeirError(
          `RocksDB store at ${this.dir} is locked: another worker process, or another open instance in this one, holds it`,
          { cause: err, retriable: true },
        );
      }
      throw new WeirError(`cannot open RocksDB store at ${this.dir}: ${message}`, { cause: err });
    }
    this.db = db;
  }

  async get(key: Buffer): Promise<Buffer | undefined> {
    const db = this.opened('get');
    const [value] = await call<(Buffer | undefined)[]>((cb) => db.getMany([dataKey(key)], { asBuffer: true }, cb));
    return value ?? undefined;
  }

  async write(changes: readonly ByteChange[], changelogOffset: number | null): Promise<void> {
    const db = this.opened('write');
    const ops: BatchOp[] = changes.map(([key, value]) =>
      value === null ? { type: 'del', key: dataKey(key) } : { type: 'put', key: dataKey(key), value },
    );
    if (changelogOffset !== null) ops.push({ type: 'put', key: OFFSET_KEY, value: encodeOffset(changelogOffset) });
    if (ops.length === 0) return;
    await call((cb) => db.batch(ops, { sync: false }, cb));
  }

  async changelogOffset(): Promise<number | null> {
    const db = this.opened('changelogOffset');
    const [value] = await call<(Buffer | undefined)[]>((cb) => db.getMany([OFFSET_KEY], { asBuffer: true }, cb));
    if (!value) return null;
    if (value.length !== 8) throw new WeirError(`RocksDB store at ${this.dir} has a corrupt changelog offset`);
    return Number(value.readBigInt64BE());
  }

  async *iterate(bounds: { gte?: Buffer; lte?: Buffer }): AsyncGenerator<readonly [Buffer, Buffer]> {
    const db = this.opened('iterate');
    const it = db.iterator({
      gte: dataKey(bounds.gte ?? Buffer.alloc(0)),
      ...(bounds.lte ? { lte: dataKey(bounds.lte) } : { lt: DATA_END }),
      keyAsBuffer: true,
      valueAsBuffer: true,
    });
    try {
      for (;;) {
        const entry = await new Promise<readonly [Buffer, Buffer] | null>((resolve, reject) => {
          it.next((err, key, value) => {
            if (err) reject(err);
            else resolve(key === undefined || value === undefined ? null : [key.subarray(1), value]);
          });
        });
        if (!entry) return;
        yield entry;
      }
    } finally {
      // Ends a native iterator (and its snapshot) however the scan stops; the db's close ends any left.
      await call((cb) => it.end(cb)).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    const db = this.db;
    if (!db) return;
    this.db = null;
    await call((cb) => db.close(cb));
  }

  async destroy(): Promise<void> {
    await this.close();
    await rm(this.dir, { recursive: true, force: true });
  }

  private opened(op: string): NativeDb {
    if (!this.db) throw new WeirError(`RocksDB store at ${this.dir} is not open (${op})`);
    return this.db;
  }
}
