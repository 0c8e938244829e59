/**
 * Waiting until everything sent has been processed and has landed:
 * - an application has caught up when its group's committed offsets equal the end offsets of all its inputs;
 * - a sink has caught up when the offsets stored in its database (with the data) equal the end offsets of every
 *   topic it reads (under exactly-once the end includes the transaction markers, which the sinks pass over).
 * A wait that makes no progress for `stallMs` fails, naming what is behind, rather than hang.
 */
import type { Admin } from 'kafkajs';
import type pg from 'pg';
import type { Redis } from 'ioredis';
import { quoteIdent } from '../../sinks/postgres/writers.js';
import { redisKeys } from '../../sinks/redis/writers.js';
import { checkInterrupted } from './environment.js';
import type { DemoPlan } from './plan.js';

export interface Behind {
  what: string;
  topic: string;
  partition: number;
  at: bigint | null;
  end: bigint;
}

export interface CatchUpTarget {
  /** e.g. "weir-trades" or "sink weir-demo-postgres" */
  name: string;
  topics: readonly string[];
  /** next offsets stored, `topic:partition` → offset (missing: none yet) */
  stored(): Promise<Map<string, bigint>>;
}

export async function endOffsets(admin: Admin, topics: readonly string[]): Promise<Map<string, bigint>> {
  const out = new Map<string, bigint>();
  for (const topic of topics) for (const o of await admin.fetchTopicOffsets(topic)) out.set(`${topic}:${o.partition}`, BigInt(o.high));
  return out;
}

/** A consumer group's committed offsets on `topics`, as a catch-up target. */
export function groupTarget(admin: Admin, groupId: string, topics: readonly string[]): CatchUpTarget {
  return {
    name: groupId,
    topics,
    async stored() {
      const out = new Map<string, bigint>();
      for (const t of await admin.fetchOffsets({ groupId, topics: [...topics] })) {
        for (const p of t.partitions) if (Number(p.offset) >= 0) out.set(`${t.topic}:${p.partition}`, BigInt(p.offset));
      }
      return out;
    },
  };
}

/** Every sink of the plan, as a catch-up target: the offsets it stored with its data (Postgres row, Redis hash). */
export function sinkTargets(plan: DemoPlan, client: pg.Client, redis: Redis): CatchUpTarget[] {
  return plan.sinks.map((sink) => ({
    name: `sink ${sink.name}`,
    topics: [...sink.outputTopics, ...sink.changelogTopics],
    async stored() {
      if (sink.kind === 'redis') {
        const all = await redis.hgetall(redisKeys.offsets(plan.redisPrefix, sink.name));
        return new Map(Object.entries(all).map(([k, v]) => [k, BigInt(v)]));
      }
      const res = await client.query<{ topic: string; partition: number; next_offset: string }>(
        `SELECT topic, "partition", next_offset FROM ${quoteIdent(plan.schema)}.sink_offsets WHERE sink = $1`,
        [sink.name],
      );
      return new Map(res.rows.map((r) => [`${r.topic}:${r.partition}`, BigInt(r.next_offset)]));
    },
  }));
}

export async function waitCaughtUp(
  admin: Admin,
  targets: readonly CatchUpTarget[],
  opts: { signal: AbortSignal; failure: () => Error | null; stallMs?: number; everyMs?: number },
): Promise<void> {
  const stallMs = opts.stallMs ?? 120_000;
  let lastProgress = Date.now();
  let lastSum = -1n;
  for (;;) {
    checkInterrupted(opts.signal);
    const failure = opts.failure();
    if (failure) throw failure;
    const behind: Behind[] = [];
    let sum = 0n;
    for (const t of targets) {
      const ends = await endOffsets(admin, t.topics);
      const stored = await t.stored();
      for (const [tp, end] of ends) {
        const at = stored.get(tp) ?? null;
        sum += at ?? 0n;
        if ((at ?? 0n) < end) {
          const i = tp.lastIndexOf(':');
          behind.push({ what: t.name, topic: tp.slice(0, i), partition: Number(tp.slice(i + 1)), at, end });
        }
      }
    }
    if (behind.length === 0) return;
    if (sum !== lastSum) {
      lastSum = sum;
      lastProgress = Date.now();
    } else if (Date.now() - lastProgress > stallMs) {
      const list = behind.slice(0, 5).map((b) => `${b.what} at ${b.topic}/${b.partition} ${b.at ?? 'nothing'} of ${b.end}`);
      throw new Error(`no progress for ${Math.round(stallMs / 1000)} s; behind: ${list.join(', ')}${behind.length > 5 ? ', …' : ''}`);
    }
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 300));
  }
}
