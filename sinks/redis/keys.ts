import type { Redis } from 'ioredis';

/**
 * The keys whose names start with `keyPrefix` (glob characters in it match literally), by SCAN: it never blocks
 * Redis the way KEYS would, and it may yield a key twice if the keyspace changes during the scan.
 */
export async function* keysStartingWith(redis: Redis, keyPrefix: string): AsyncGenerator<string[]> {
  const pattern = `${keyPrefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) yield keys;
  } while (cursor !== '0');
}

/** Delete every key `<prefix>:*` a sink wrote under `prefix`; returns how many. */
export async function deleteUnder(redis: Redis, prefix: string): Promise<number> {
  let n = 0;
  for await (const keys of keysStartingWith(redis, `${prefix}:`)) n += await redis.unlink(...keys);
  return n;
}
