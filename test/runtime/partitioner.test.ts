import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { murmur2, partitionForKey } from '../../index.js';

describe('murmur2 partitioner', () => {
  // Vectors from the Java client's UtilsTest, so keys co-partition with Java producers.
  it.each([
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
  ])('murmur2(%s) = %d', (key, expected) => {
    expect(murmur2(Buffer.from(key))).toBe(expected);
  });

  it('agrees with kafkajs Java-compatible partitioner on many keys', () => {
    const require = createRequire(import.meta.url);
    const kafkajsMurmur2 = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (k: Buffer) => number;
    for (let i = 0; i < 2000; i++) {
      const key = Buffer.from(`tenant-${i}-${'x'.repeat(i % 7)}`);
      expect(murmur2(key)).toBe(kafkajsMurmur2(key));
      expect(partitionForKey(key, 12)).toBe((kafkajsMurmur2(key) & 0x7fffffff) % 12);
    }
  });
});
