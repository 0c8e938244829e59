/**
 * Cutting a sink's database connections from outside, as an outage or a failover would:
 * - Postgres: pg_terminate_backend of every backend whose application_name is the sink's (`sinkConnectionName`,
 *   sinks/sink.ts), in the sink's database;
 * - Redis: CLIENT KILL ID of every client of that name.
 * Each returns how many connections it cut. A sink keeps its connections only while it uses them (the pool lets
 * idle ones go), so `cutSomeSink` picks among the sinks that have some, and tries again for a while when none has.
 */
import type pg from 'pg';
import type { Redis } from 'ioredis';
import { sinkConnectionName } from '../../sinks/sink.js';

export async function terminatePostgresConnections(client: pg.Client, database: string, sink: string): Promise<number> {
  const res = await client.query<{ cut: boolean }>(
    `SELECT pg_terminate_backend(pid) AS cut FROM pg_stat_activity
      WHERE datname = $1 AND application_name = $2 AND pid <> pg_backend_pid()`,
    [database, sinkConnectionName(sink)],
  );
  return res.rows.filter((r) => r.cut).length;
}

export async function killRedisConnections(redis: Redis, sink: string): Promise<number> {
  const list = (await redis.client('LIST')) as string;
  const name = `name=${sinkConnectionName(sink)}`;
  const ids = list
    .split('\n')
    .filter((line) => line.split(' ').includes(name))
    .map((line) => /(?:^| )id=(\d+)/.exec(line)?.[1])
    .filter((id): id is string => id !== undefined);
  let cut = 0;
  for (const id of ids) cut += Number(await redis.client('KILL', 'ID', id).catch(() => 0));
  return cut;
}

/** How many Postgres connections each of `sinks` has open now. */
export async function postgresConnections(client: pg.Client, database: string, sinks: readonly string[]): Promise<Map<string, number>> {
  const res = await client.query<{ application_name: string; n: string }>(
    `SELECT application_name, count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = ANY($2) GROUP BY 1`,
    [database, sinks.map(sinkConnectionName)],
  );
  const byName = new Map(res.rows.map((r) => [r.application_name, Number(r.n)]));
  return new Map(sinks.map((s) => [s, byName.get(sinkConnectionName(s)) ?? 0]));
}

/** How many Redis connections each of `sinks` has open now. */
export async function redisConnections(redis: Redis, sinks: readonly string[]): Promise<Map<string, number>> {
  const names = ((await redis.client('LIST')) as string).split('\n').map((line) => /(?:^| )name=(\S*)/.exec(line)?.[1]);
  return new Map(sinks.map((s) => [s, names.filter((n) => n === sinkConnectionName(s)).length]));
}

/**
 * Cut the connections of one of `sinks`, picked at random among those that have any open: a sink's pool lets idle
 * connections go, so one that has nothing to write at the moment may have none. Tries for up to `withinMs`.
 * Returns the sink and how many connections were cut (0: none had any).
 */
export async function cutSomeSink(
  sinks: readonly string[],
  open: (sinks: readonly string[]) => Promise<Map<string, number>>,
  cut: (sink: string) => Promise<number>,
  pick: <T>(xs: readonly T[]) => T,
  withinMs = 8000,
): Promise<{ sink: string; cut: number }> {
  if (sinks.length === 0) return { sink: '(no sink)', cut: 0 };
  const deadline = Date.now() + withinMs;
  for (;;) {
    const withConnections = [...(await open(sinks))].filter(([, n]) => n > 0).map(([s]) => s);
    if (withConnections.length > 0) {
      const sink = pick(withConnections);
      const n = await cut(sink);
      if (n > 0) return { sink, cut: n };
    }
    if (Date.now() > deadline) return { sink: pick(sinks), cut: 0 };
    await new Promise((r) => setTimeout(r, 250));
  }
}
