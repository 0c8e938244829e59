/**
 * Key writers of the Redis sink, one per output topic (pluggable: any topic can bring its own).
 * - `prepare`: validate a decoded record and convert it (decimals to exact text); called when the record is added,
 *   so a bad record stalls only its partition;
 * - `write`: queue the commands of one flush on the MULTI of that flush (after the offsets check). Commands must
 *   be plain overwrites or otherwise safe to re-apply in offset order: the offsets guard makes a batch apply once.
 * Keys live under `<prefix>:`; nothing else may write there (Redis does not roll a transaction back when one of
 * its commands fails at run time, e.g. WRONGTYPE).
 *
 * `redisWriters.hash` and `.string` are the general forms. Live agent load and queue depth per tenant and skill
 * come from the routing stores' changelogs: see `routingLiveStateWriters` (routing-live-state.ts).
 */
import type { ChainableCommander } from 'ioredis';
import { Scale } from '../../schemas/types.js';
import { asFields, bool, dec, int, long, oneOf, optDec, str, type Fields } from '../fields.js';
import type { SinkRecord } from '../sink.js';

export interface RedisTopicWriter<P = unknown> {
  prepare(record: SinkRecord, prefix: string): P;
  /** Queue the writes of one flush (offset order per partition); returns the number of keys/fields written. */
  write(tx: ChainableCommander, items: readonly P[]): number;
}

interface HashWrite {
  key: string;
  field: string;
  value: string;
}

interface StringWrite {
  key: string;
  value: string;
  ttlSeconds: number | undefined;
}

/**
 * One part of a key made of several ids. `:` separates the parts, so an id's own `:` (and `%`, the escape) is
 * percent-encoded: tenant `a:b` with conversation `c` and tenant `a` with conversation `b:c` get different keys.
 * Ids without either character stay as they are.
 */
const keyPart = (id: string): string => id.replace(/[%:]/g, (c) => (c === '%' ? '%25' : '%3A'));

/** The Redis keys the writers below write, for everything that reads them back. */
export const redisKeys = {
  /** the offsets hash of a sink (field `<topic>:<partition>`, value the next offset) */
  offsets: (prefix: string, sink: string): string => `${prefix}:offsets:${sink}`,
  routingDecision: (prefix: string, tenantId: string, conversationId: string): string =>
    `${prefix}:routing-decision:${keyPart(tenantId)}:${keyPart(conversationId)}`,
};

export const redisWriters = {
  /** One hash field per record: HSET key field value (latest wins). */
  hash<V = Fields>(spec: {
    key: (value: V, prefix: string) => string;
    field: (value: V) => string;
    value: (value: V) => string;
    /** check and convert the decoded value; throw a RecordShapeError when it does not fit */
    validate: (value: unknown) => V;
  }): RedisTopicWriter<HashWrite> {
    return {
      prepare(record, prefix) {
        const v = spec.validate(record.value);
        return { key: spec.key(v, prefix), field: spec.field(v), value: spec.value(v) };
      },
      write(tx, items) {
        for (const w of items) tx.hset(w.key, w.field, w.value);
        return items.length;
      },
    };
  },

  /** One string key per record: SET key value [EX ttl] (latest wins). */
  string<V = Fields>(spec: {
    key: (value: V, prefix: string) => string;
    value: (value: V) => string;
    validate: (value: unknown) => V;
    ttlSeconds?: number;
  }): RedisTopicWriter<StringWrite> {
    return {
      prepare(record, prefix) {
        const v = spec.validate(record.value);
        return { key: spec.key(v, prefix), value: spec.value(v), ttlSeconds: spec.ttlSeconds };
      },
      write(tx, items) {
        for (const w of items) {
          if (w.ttlSeconds === undefined) tx.set(w.key, w.value);
          else tx.set(w.key, w.value, 'EX', w.ttlSeconds);
        }
        return items.length;
      },
    };
  },

  /**
   * positions → hash `<prefix>:position:<accountId>`, field = instrument, value = the position as JSON with
   * decimals as exact text at their scale (HGETALL gives every position of an account).
   */
  positions(): RedisTopicWriter<HashWrite> {
    return redisWriters.hash<PositionJson>({
      validate: positionJson,
      key: (v, prefix) => `${prefix}:position:${v.accountId}`,
      field: (v) => v.instrument,
      value: (v) => JSON.stringify(v),
    });
  },

  /**
   * routing-decisions → string `<prefix>:routing-decision:<tenantId>:<conversationId>` = the decision as JSON
   * (conversation ids are unique per tenant; both ids through `keyPart`). `ttlSeconds` lets old decisions expire.
   */
  routingDecisions(opts: { ttlSeconds?: number } = {}): RedisTopicWriter<StringWrite> {
    return redisWriters.string<RoutingDecisionJson>({
      validate: routingDecisionJson,
      key: (v, prefix) => redisKeys.routingDecision(prefix, v.tenantId, v.conversationId),
      value: (v) => JSON.stringify(v),
      ttlSeconds: opts.ttlSeconds,
    });
  },
};

export interface PositionJson {
  accountId: string;
  instrument: string;
  quantity: string;
  costBasis: string;
  averageCost: string | null;
  realisedPnl: string;
  currency: string;
  openLots: number;
  liveTrades: number;
  lastTradeId: string;
  lastTradeVersion: number;
  updatedAt: number;
}

export function positionJson(value: unknown): PositionJson {
  const v = asFields(value);
  return {
    accountId: str(v, 'accountId'),
    instrument: str(v, 'instrument'),
    quantity: dec(v, 'quantity', 20, Scale.quantity),
    costBasis: dec(v, 'costBasis', 38, Scale.notional),
    averageCost: optDec(v, 'averageCost', 20, Scale.averageCost),
    realisedPnl: dec(v, 'realisedPnl', 38, Scale.notional),
    currency: str(v, 'currency'),
    openLots: int(v, 'openLots'),
    liveTrades: int(v, 'liveTrades'),
    lastTradeId: str(v, 'lastTradeId'),
    lastTradeVersion: int(v, 'lastTradeVersion'),
    updatedAt: Number(long(v, 'updatedAt')),
  };
}

export interface RoutingDecisionJson {
  tenantId: string;
  conversationId: string;
  agentId: string;
  skill: string;
  priority: number;
  requestedAt: number;
  assignedAt: number;
  waitMs: number;
  queued: boolean;
  reason: string;
}

export function routingDecisionJson(value: unknown): RoutingDecisionJson {
  const v = asFields(value);
  return {
    tenantId: str(v, 'tenantId'),
    conversationId: str(v, 'conversationId'),
    agentId: str(v, 'agentId'),
    skill: str(v, 'skill'),
    priority: int(v, 'priority'),
    requestedAt: Number(long(v, 'requestedAt')),
    assignedAt: Number(long(v, 'assignedAt')),
    waitMs: Number(long(v, 'waitMs')),
    queued: bool(v, 'queued'),
    reason: oneOf(v, 'reason', ['ONLY_CANDIDATE', 'LEAST_LOADED', 'LONGEST_IDLE', 'LOWEST_AGENT_ID'] as const),
  };
}
