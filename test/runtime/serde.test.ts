import { describe, expect, it } from 'vitest';
import { Serdes } from '../../runtime/serde.js';

describe('Serdes.json', () => {
  const json = Serdes.json<unknown>();
  const roundTrip = (v: unknown) => json.deserialize(json.serialize(v));

  it('round-trips bigints exactly, at any depth, beyond the range of a double', () => {
    const v = {
      quantity: 123456789012345678901234567890n,
      lots: [{ tradeId: 't1', quantity: -5n, price: 101_250_000n }, { tradeId: 't2', quantity: 0n, price: 9007199254740993n }],
      nested: { deeper: [[1n, 2n], { x: -1n }] },
      plain: 1.5,
      text: 'a "$bigint" in a string stays a string',
      none: null,
    };
    expect(roundTrip(v)).toEqual(v);
  });

  it('leaves values without bigints as JSON has them', () => {
    const v = { a: [1, 'two', { three: true }], b: null };
    expect(roundTrip(v)).toEqual(v);
    expect(json.serialize(v).toString()).toBe(JSON.stringify(v));
  });

  it('takes only a lone $bigint key as a bigint', () => {
    const v = { $bigint: '12', other: 1 };
    expect(roundTrip(v)).toEqual(v);
    expect(roundTrip(12n)).toBe(12n);
    expect(roundTrip([12n])).toEqual([12n]);
  });

  it('writes the same bytes for a value without bigints after it has written one with them', () => {
    const serde = Serdes.json<unknown>();
    expect(serde.deserialize(serde.serialize({ n: 1n }))).toEqual({ n: 1n });
    const plain = { a: [1, 'two'], b: { c: null } };
    expect(serde.serialize(plain).toString()).toBe(JSON.stringify(plain));
    expect(serde.deserialize(serde.serialize({ n: 2n, m: [3n] }))).toEqual({ n: 2n, m: [3n] });
  });
});
