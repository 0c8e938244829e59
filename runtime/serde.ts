/**
 * Serdes turn keys and values into bytes and back.
 * - `Serde<T>` may be asynchronous (a registry lookup); sources and sinks accept it.
 * - `SyncSerde<T>` is what state stores need: they run on every record and must not wait.
 */
export interface SerdeContext {
  topic: string;
  headers?: Record<string, Buffer | undefined>;
}

export interface Serde<T> {
  serialize(value: T, ctx: SerdeContext): Buffer | Promise<Buffer>;
  deserialize(data: Buffer, ctx: SerdeContext): T | Promise<T>;
}

export interface SyncSerde<T> extends Serde<T> {
  serialize(value: T, ctx?: SerdeContext): Buffer;
  deserialize(data: Buffer, ctx?: SerdeContext): T;
}

export const Serdes = {
  string(): SyncSerde<string> {
    return {
      serialize: (v) => Buffer.from(v, 'utf8'),
      deserialize: (b) => b.toString('utf8'),
    };
  },
  bytes(): SyncSerde<Buffer> {
    return { serialize: (v) => v, deserialize: (b) => b };
  },
  /** JSON; bigint values round-trip exactly (written as `{"$bigint":"<digits>"}`), so exact amounts survive. */
  json<T>(): SyncSerde<T> {
    // The replacer costs a call per value: only pay for it when there are bigints to write. A serde serves values of
    // one shape (a store's, a topic's), so once a value held a bigint the next ones go straight to the replacer
    // instead of failing the plain stringify first (a thrown TypeError per value).
    let bigints = false;
    return {
      serialize: (v) => {
        if (bigints) return Buffer.from(JSON.stringify(v, bigintReplacer), 'utf8');
        try {
          return Buffer.from(JSON.stringify(v), 'utf8');
        } catch (err) {
          if (!(err instanceof TypeError) || !/BigInt/i.test(err.message)) throw err;
          bigints = true;
          return Buffer.from(JSON.stringify(v, bigintReplacer), 'utf8');
        }
      },
      deserialize: (b) => {
        const text = b.toString('utf8');
        // a walk after the parse costs far less than a reviver, which V8 calls for every value
        return (text.includes('"$bigint"') ? reviveBigints(JSON.parse(text)) : JSON.parse(text)) as T;
      },
    };
  },
  /** A signed 64-bit big-endian integer, as Java's LongSerializer writes it. */
  bigint(): SyncSerde<bigint> {
    return {
      serialize: (v) => {
        const b = Buffer.allocUnsafe(8);
        b.writeBigInt64BE(v);
        return b;
      },
      deserialize: (b) => {
        if (b.length !== 8) throw new Error(`a long takes 8 bytes, got ${b.length}`);
        return b.readBigInt64BE();
      },
    };
  },
};

function bigintReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? { $bigint: value.toString() } : value;
}

/** Replaces, in place, every `{"$bigint": "<digits>"}` object below `value` by its bigint; returns the result. */
function reviveBigints(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = reviveBigints(value[i]);
    return value;
  }
  const o = value as Record<string, unknown>;
  const big = o.$bigint;
  if (typeof big === 'string') {
    let keys = 0;
    for (const _ in o) if (++keys > 1) break;
    if (keys === 1) return BigInt(big);
  }
  for (const k in o) o[k] = reviveBigints(o[k]);
  return o;
}
