/**
 * The fault rounds, while the load runs. Each round, at a random moment in its first seconds:
 * 1. SIGKILL a random member — a worker in odd rounds, a sink in even rounds (so a short run has both) — and start
 *    it again a second later with the same arguments and state directory;
 * 2. while it restarts: cut the Postgres connections of a random Postgres sink (pg_terminate_backend) and the Redis
 *    connections of a random Redis sink (CLIENT KILL), among those that have connections open, the member just
 *    killed aside;
 * 3. wait until the restarted member is ready again;
 * 4. in the middle round only: restart the broker (the load pauses meanwhile; every worker and sink rides it out);
 * then the round waits out its length. Every action is a journal line with its time.
 */
import type pg from 'pg';
import type { Redis } from 'ioredis';
import { checkInterrupted } from '../../cli/demo/environment.js';
import type { ChaosBroker } from './broker.js';
import type { Fleet } from './fleet.js';
import type { Journal } from './journal.js';
import type { SteadyLoad } from './load.js';
import { cutSomeSink, killRedisConnections, postgresConnections, redisConnections, terminatePostgresConnections } from './faults.js';

export interface RoundsContext {
  fleet: Fleet;
  broker: ChaosBroker;
  load: SteadyLoad;
  journal: Journal;
  /** a control connection to the sinks' database */
  pg: pg.Client;
  database: string;
  redis: Redis;
  random: () => number;
  rounds: number;
  roundSeconds: number;
  readyTimeoutMs: number;
  brokerDownMs: number;
  signal: AbortSignal;
}

/** Waits `ms`, or less when the run is interrupted. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener('abort', done, { once: true });
  });
}
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export async function runRounds(ctx: RoundsContext): Promise<void> {
  const { fleet, journal } = ctx;
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(ctx.random() * xs.length)]!;
  const brokerRound = Math.ceil(ctx.rounds / 2);
  for (let r = 1; r <= ctx.rounds; r++) {
    checkInterrupted(ctx.signal);
    const roundStart = Date.now();
    const tag = `round ${r}/${ctx.rounds}:`;
    await sleep(ctx.random() * 3000, ctx.signal);
    checkInterrupted(ctx.signal);

    // 1. kill and restart
    const victim = pick(r % 2 === 1 ? fleet.workers : fleet.sinks);
    const pid = await fleet.kill(victim);
    journal.fault(victim.spec.role === 'worker' ? 'worker killed' : 'sink killed');
    journal.action(`${tag} SIGKILL ${victim.label} (pid ${pid})`);
    await sleep(1000);
    const restarting = Date.now();
    const ready = fleet.restart(victim, ctx.readyTimeoutMs);
    ready.catch(() => undefined);
    await sleep(1500);

    // 2. connection cuts, the victim aside
    const others = (kind: 'postgres' | 'redis') => fleet.sinks.filter((s) => s.sink!.kind === kind && s !== victim).map((s) => s.sink!.name);
    const pgCut = await cutSomeSink(
      others('postgres'),
      (sinks) => postgresConnections(ctx.pg, ctx.database, sinks),
      (sink) => terminatePostgresConnections(ctx.pg, ctx.database, sink),
      pick,
    );
    journal.fault('Postgres connections cut', pgCut.cut);
    journal.action(`${tag} pg_terminate_backend: ${pgCut.cut} connection(s) of ${pgCut.sink} cut`);
    const redisCut = await cutSomeSink(others('redis'), (sinks) => redisConnections(ctx.redis, sinks), (sink) => killRedisConnections(ctx.redis, sink), pick);
    journal.fault('Redis connections cut', redisCut.cut);
    journal.action(`${tag} CLIENT KILL: ${redisCut.cut} connection(s) of ${redisCut.sink} cut`);

    // 3. the victim is back
    const newPid = await ready;
    journal.action(`${tag} ${victim.label} restarted (pid ${newPid}), ready in ${secs(Date.now() - restarting)}`);

    // 4. the broker, once
    if (r === brokerRound) await restartBroker(ctx, tag);

    await sleep(roundStart + ctx.roundSeconds * 1000 - Date.now(), ctx.signal);
  }
  checkInterrupted(ctx.signal);
}

async function restartBroker(ctx: RoundsContext, tag: string): Promise<void> {
  const { journal } = ctx;
  await ctx.load.pause();
  journal.action(`${tag} load paused; restarting the Kafka broker (SIGTERM, down for ${secs(ctx.brokerDownMs)}, then started on the same port with the same data)`);
  const t = Date.now();
  await ctx.broker.restart(ctx.brokerDownMs);
  journal.fault('broker restarted');
  journal.action(`${tag} broker back at ${ctx.broker.brokers} after ${secs(Date.now() - t)}; load resumed`);
  ctx.load.resume();
}
