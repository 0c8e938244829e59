/**
 * The streams `weir produce --generate <scenario>` sends: the seeded generators of this folder, shaped for a live
 * broker.
 * - **count**: exactly `count` records in all (events, duplicates and malformed records together), over all the
 *   scenario's input topics in arrival order (or only the topics asked for);
 * - **scale**: generated in chunks of at most 20,000 events, so a large count starts at once and stays in bounded
 *   memory; each chunk has its own seed and chunk-unique ids; many tenants (routing) and accounts (trades), skewed;
 * - **time**: the scenarios' event times are shifted so the stream ends about now (late and out-of-order events
 *   keep their offsets), with event-time steps scaled to keep a big stream within a day — records far older than
 *   the topic retention would be deleted by the broker before they could be replayed;
 * - **duplicates**: the generators' own re-sends (same eventId), at the ratio asked for;
 * - **malformed**: at the ratio asked for, records that fail decoding (not Avro at all, or a truncated Avro body)
 *   or validation (e.g. a NEW trade at version 2, a key that is not the accountId, net ≠ gross − fee); each is
 *   added before a valid record, never in its place, so the valid stream stays coherent.
 * Same seed and options → the same records in the same order; only the time base (now) differs between runs.
 */
import type { AgentEvent, ConversationEvent, Payment, Settlement, TradeEvent } from '../../schemas/types.js';
import { generateTrades, INSTRUMENTS } from './trades.js';
import { generateRoutingEvents, invalidVariant, prng, type GeneratedEvent } from './routing.js';
import { generatePayments } from './payments.js';

export const SCENARIOS = ['routing', 'trades', 'payments'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** The input topics each scenario produces to. */
export const scenarioTopics: Readonly<Record<ScenarioName, readonly string[]>> = {
  routing: ['agent-events', 'conversation-events'],
  trades: ['trades'],
  payments: ['payments', 'settlements'],
};

export type RecordKind = 'event' | 'duplicate' | 'malformed';

export interface ScenarioRecord {
  topic: string;
  key: string;
  value: object;
  /** Record timestamp: the value's eventTime. */
  timestamp: number;
  kind: RecordKind;
  /** For a malformed record that must fail decoding: how to spoil its bytes after encoding. */
  corrupt?: 'not-avro' | 'truncated';
}

export interface ScenarioOptions {
  count: number;
  seed: number;
  /** Share of re-sent events (same eventId), 0..1. */
  duplicates: number;
  /** Share of malformed records, 0..1. */
  malformed: number;
  /** Only these of the scenario's topics; default all. */
  topics?: readonly string[];
  /** The time the stream ends at; default Date.now(). */
  now?: number;
}

const CHUNK = 20_000;
const DAY = 86_400_000;
/** Event time a whole stream may span (leaving the late records of a scenario room within a day's retention). */
const SPAN_BUDGET = DAY / 2;
/** The payments application's default settlement deadline (topologies/payments.ts). */
const PAYMENTS_DEADLINE_MS = 48 * 3_600_000;
const SKILLS = ['billing', 'sales', 'support', 'tech', 'returns', 'vip', 'fr', 'de', 'es', 'it', 'nl', 'claims', 'onboarding', 'fraud', 'loans', 'cards'];

interface Chunk {
  records: ScenarioRecord[];
  /** The nominal end of the chunk's event time (where the next chunk starts). */
  nominalEnd: number;
  /** The largest time in the chunk (late records included). */
  maxTime: number;
}

export function* generateScenario(name: ScenarioName, opts: ScenarioOptions): Generator<ScenarioRecord> {
  const topics = new Set(opts.topics ?? scenarioTopics[name]);
  const rnd = prng((opts.seed ^ 0x5bd1e995) >>> 0);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const now = opts.now ?? Date.now();
  let produced = 0;
  let delta: number | undefined;
  let start = 0;
  for (let c = 0; produced < opts.count; c++) {
    const remaining = opts.count - produced;
    const chunk = makeChunk(name, c, start, remaining, opts);
    const kept = chunk.records.filter((r) => topics.has(r.topic));
    if (chunk.records.length === 0) return;
    if (delta === undefined) {
      // Shift so the whole stream ends now: exactly when this chunk is all of it, else estimated from this chunk.
      const used = kept.slice(0, opts.count);
      const usedMax = used.reduce((m, r) => Math.max(m, r.timestamp), start);
      const chunksLeft = kept.length === 0 ? 0 : Math.max(0, opts.count / kept.length - 1);
      delta = now - Math.ceil(chunksLeft === 0 ? usedMax : chunk.maxTime + (chunk.nominalEnd - start) * chunksLeft * 1.05);
    }
    start = chunk.nominalEnd;
    for (const r of kept) {
      shiftTimes(r, delta);
      while (produced < opts.count && opts.malformed > 0 && rnd() < opts.malformed) {
        yield malformedOf(name, r, rnd, pick);
        produced++;
      }
      if (produced >= opts.count) return;
      yield r;
      produced++;
    }
  }
}

function chunkSeed(seed: number, c: number): number {
  return c === 0 ? seed >>> 0 : (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(c, 0xc2b2ae35)) >>> 0;
}

const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));

function makeChunk(name: ScenarioName, c: number, start: number, remaining: number, opts: ScenarioOptions): Chunk {
  const seed = chunkSeed(opts.seed, c);
  const suffix = c === 0 ? '' : `-c${c}`;
  switch (name) {
    case 'trades': {
      const events = Math.min(CHUNK, remaining);
      // mean step maxGap/2: the whole count within the span budget, and never more than the generator's 5 s
      const maxGapMs = clamp(Math.floor((2 * SPAN_BUDGET) / opts.count), 2, 5_000);
      const gen = generateTrades({
        seed,
        events,
        accounts: clamp(Math.round(opts.count / 40), 6, 200),
        instruments: INSTRUMENTS.length,
        duplicateRate: opts.duplicates,
        startTime: start,
        maxGapMs,
      });
      const seen = new Set<string>();
      const records = gen.events.map((e): ScenarioRecord => {
        const value: TradeEvent = { ...e, eventId: `${e.eventId}${suffix}`, tradeId: `${e.tradeId}${suffix}` };
        const kind = seen.has(value.eventId) ? 'duplicate' : 'event';
        seen.add(value.eventId);
        return { topic: 'trades', key: value.accountId, value, timestamp: value.eventTime, kind };
      });
      const maxTime = records.reduce((m, r) => Math.max(m, r.timestamp), start);
      return { records, nominalEnd: maxTime, maxTime };
    }
    case 'routing': {
      const steps = Math.min(CHUNK, remaining);
      const maxStepMs = clamp(Math.floor((2.3 * SPAN_BUDGET) / opts.count), 2, 900);
      const gen = generateRoutingEvents({
        seed,
        steps,
        tenants: clamp(Math.round(steps / 50), 8, 80),
        duplicateRate: opts.duplicates,
        invalidRate: 0,
        startTime: start,
        maxStepMs,
        skillPool: SKILLS,
      });
      const records = gen.map((e): ScenarioRecord => {
        const value = e.topic === 'agent-events'
          ? ({ ...e.value, eventId: `${e.value.eventId}${suffix}` } satisfies AgentEvent)
          : ({ ...e.value, eventId: `${e.value.eventId}${suffix}`, conversationId: `${e.value.conversationId}${suffix}` } satisfies ConversationEvent);
        return { topic: e.topic, key: e.key, value, timestamp: value.eventTime, kind: e.duplicate ? 'duplicate' : 'event' };
      });
      const maxTime = records.reduce((m, r) => Math.max(m, r.timestamp), start);
      return { records, nominalEnd: maxTime, maxTime };
    }
    case 'payments': {
      const count = Math.min(CHUNK, Math.ceil(remaining / 1.5));
      const gapMs = clamp(Math.floor(SPAN_BUDGET / Math.ceil(opts.count / 1.5)), 2, 600_000);
      const gen = generatePayments({ seed, count, deadlineMs: PAYMENTS_DEADLINE_MS, start, gapMs, merchants: 400, duplicateRate: opts.duplicates });
      // paymentIds and eventIds of the generator are per index: the seed makes them unique per run
      const tag = `-${(opts.seed >>> 0).toString(36)}${suffix}`;
      const records = gen.records.map((r): ScenarioRecord => {
        const value =
          r.topic === 'payments'
            ? ({ ...(r.value as Payment), eventId: `${r.value.eventId}${tag}`, paymentId: `${r.value.paymentId}${tag}` } satisfies Payment)
            : ({
                ...(r.value as Settlement),
                eventId: `${r.value.eventId}${tag}`,
                paymentId: `${r.value.paymentId}${tag}`,
                settlementId: `${(r.value as Settlement).settlementId}${tag}`,
              } satisfies Settlement);
        return { topic: r.topic, key: value.paymentId, value, timestamp: r.timestamp, kind: r.duplicate ? 'duplicate' : 'event' };
      });
      return { records, nominalEnd: start + count * gapMs, maxTime: gen.maxEventTime };
    }
    default: {
      const never: never = name;
      throw new Error(`unknown scenario ${String(never)}`);
    }
  }
}

/** Shift every time field of the record by `delta` (the values are the chunk's own copies). */
function shiftTimes(r: ScenarioRecord, delta: number): void {
  const v = r.value as Record<string, unknown>;
  for (const f of ['eventTime', 'tradeTime', 'settledAt']) if (typeof v[f] === 'number') v[f] = (v[f] as number) + delta;
  r.timestamp += delta;
}

/** A malformed record made from the valid record `r` (which still follows it). */
function malformedOf(name: ScenarioName, r: ScenarioRecord, rnd: () => number, pick: <T>(xs: readonly T[]) => T): ScenarioRecord {
  if (rnd() < 0.5) return { ...r, kind: 'malformed', corrupt: rnd() < 0.5 ? 'not-avro' : 'truncated' };
  const eventId = `${(r.value as { eventId: string }).eventId}-bad`;
  switch (name) {
    case 'trades': {
      const v = { ...(r.value as TradeEvent), eventId };
      const bad = pick<() => ScenarioRecord>([
        () => ({ ...r, value: { ...v, type: 'NEW', version: 2 } }),
        () => ({ ...r, value: { ...v, quantity: 0n } }),
        () => ({ ...r, value: { ...v, currency: 'usd' } }),
        () => ({ ...r, key: `${r.key}-other`, value: v }),
      ]);
      return { ...bad(), kind: 'malformed' };
    }
    case 'routing': {
      const e = { topic: r.topic, key: r.key, value: r.value, duplicate: false, invalid: false } as GeneratedEvent;
      const bad = invalidVariant(e, eventId, pick);
      return { ...r, value: bad.value, kind: 'malformed' };
    }
    case 'payments': {
      if (r.topic === 'payments') {
        const v = { ...(r.value as Payment), eventId };
        const bad = pick<() => ScenarioRecord>([
          () => ({ ...r, value: { ...v, amount: 0n } }),
          () => ({ ...r, value: { ...v, currency: 'euro' } }),
          () => ({ ...r, key: `${r.key}-other`, value: v }),
        ]);
        return { ...bad(), kind: 'malformed' };
      }
      const v = { ...(r.value as Settlement), eventId };
      const bad = pick<() => ScenarioRecord>([
        () => ({ ...r, value: { ...v, netAmount: v.grossAmount - v.fee + 1n } }),
        () => ({ ...r, value: { ...v, fee: -1n, netAmount: v.grossAmount + 1n } }),
        () => ({ ...r, key: `${r.key}-other`, value: v }),
      ]);
      return { ...bad(), kind: 'malformed' };
    }
    default: {
      const never: never = name;
      throw new Error(`unknown scenario ${String(never)}`);
    }
  }
}
