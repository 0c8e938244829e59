/**
 * Live routing state in Redis, read from the routing application's store changelogs (processors/routing/stores.ts
 * documents their keys and values; both are logged as `<applicationId>-<store>-changelog`, JSON values):
 * - `agentLoad()`: `routing-agents` (key `<tenant>␀<agentId>`, value AgentState with `load`) → hash
 *   `<prefix>:agent-load:<tenant>`, field agentId = load;
 * - `queueDepth()`: `routing-stats` (key `<tenant>␀skill␀<skill>`, value `{ waiting, active }`) → hash
 *   `<prefix>:queue-depth:<tenant>`, field skill = waiting. The store's counter keys (`<tenant>␀count␀<name>`)
 *   are not queue depth and are passed over.
 * A tombstone (the store deleted the key) deletes the field, so the runner must let tombstones of these topics
 * through (`SinkRunner` option `tombstoneTopics`). A changelog is a sequence of overwrites per key, so applying it
 * in offset order once (the runner's offsets guard) leaves each field at the store's committed value.
 * (␀ is U+0000.) A replay's reset marker (key `␀weir.reset`) names no tenant and is passed over: fields of keys the
 * rebuilt store no longer has stay until overwritten or deleted.
 */
import type { ChainableCommander } from 'ioredis';
import { RecordShapeError } from '../errors.js';
import { asFields, int } from '../fields.js';
import type { SinkRecord } from '../sink.js';
import type { RedisTopicWriter } from './writers.js';

const SEP = '\u0000';

export type LiveStateWrite =
  | { op: 'set'; key: string; field: string; value: string }
  | { op: 'delete'; key: string; field: string }
  /** a record that is not live state (a counter, a reset marker): nothing to write */
  | { op: 'none' };

export const liveStateKeys = {
  agentLoad: (prefix: string, tenantId: string): string => `${prefix}:agent-load:${tenantId}`,
  queueDepth: (prefix: string, tenantId: string): string => `${prefix}:queue-depth:${tenantId}`,
};

export const routingLiveStateWriters = {
  /** `routing-agents` changelog → `<prefix>:agent-load:<tenant>`: agentId → load. */
  agentLoad(): RedisTopicWriter<LiveStateWrite> {
    return liveStateWriter((record, prefix) => {
      const parts = keyParts(record);
      if (!parts) return { op: 'none' };
      if (parts.length !== 2) throw new RecordShapeError(`routing-agents key ${JSON.stringify(record.key)} is not <tenant>␀<agentId>`);
      const [tenantId, agentId] = parts as [string, string];
      const key = liveStateKeys.agentLoad(prefix, tenantId);
      if (record.value === null) return { op: 'delete', key, field: agentId };
      const load = int(asFields(record.value), 'load');
      if (load < 0) throw new RecordShapeError(`field 'load' must be >= 0, got ${load}`);
      return { op: 'set', key, field: agentId, value: String(load) };
    });
  },

  /** `routing-stats` changelog → `<prefix>:queue-depth:<tenant>`: skill → waiting. */
  queueDepth(): RedisTopicWriter<LiveStateWrite> {
    return liveStateWriter((record, prefix) => {
      const parts = keyParts(record);
      if (!parts) return { op: 'none' };
      const [tenantId, kind, name] = parts;
      if (parts.length === 3 && kind === 'count') return { op: 'none' };
      if (parts.length !== 3 || kind !== 'skill') {
        throw new RecordShapeError(`routing-stats key ${JSON.stringify(record.key)} is neither <tenant>␀skill␀<skill> nor <tenant>␀count␀<name>`);
      }
      const key = liveStateKeys.queueDepth(prefix, tenantId!);
      if (record.value === null) return { op: 'delete', key, field: name! };
      const waiting = int(asFields(record.value), 'waiting');
      if (waiting < 0) throw new RecordShapeError(`field 'waiting' must be >= 0, got ${waiting}`);
      return { op: 'set', key, field: name!, value: String(waiting) };
    });
  },
};

/** The parts of a tenant-scoped store key; undefined for a key that names no tenant (a reset marker). */
function keyParts(record: SinkRecord): string[] | undefined {
  if (record.key === null) throw new RecordShapeError('a changelog record without a key');
  if (record.key.startsWith(SEP)) return undefined;
  const parts = record.key.split(SEP);
  if (parts.some((p) => p.length === 0)) throw new RecordShapeError(`store key ${JSON.stringify(record.key)} has an empty part`);
  return parts;
}

function liveStateWriter(prepare: (record: SinkRecord, prefix: string) => LiveStateWrite): RedisTopicWriter<LiveStateWrite> {
  return {
    prepare,
    write(tx: ChainableCommander, items: readonly LiveStateWrite[]): number {
      let n = 0;
      for (const w of items) {
        if (w.op === 'set') tx.hset(w.key, w.field, w.value);
        else if (w.op === 'delete') tx.hdel(w.key, w.field);
        else continue;
        n++;
      }
      return n;
    },
  };
}
