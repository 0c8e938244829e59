/**
 * The reset at the start of every run, so a run never meets the previous run's data:
 * 1. Postgres: create the database and migrate the sink schema if needed, truncate the sink tables and delete the
 *    demo sinks' stored offsets;
 * 2. Redis: delete every key under the demo's prefix;
 * 3. Kafka: delete the demo's consumer groups (refused while one has live members: another run is going), then
 *    delete its topics (inputs, outputs, changelogs, dead letters) and create them afresh (WEIR_PARTITIONS
 *    partitions, `positions` and the changelogs compacted, one partition per dead-letter topic, 30 days' retention);
 * 4. the local state of the three applications under WEIR_STATE_DIR (refused while a live process holds its lock).
 */
import { rmSync } from 'node:fs';
import type { Admin } from 'kafkajs';
import pg from 'pg';
import { Redis } from 'ioredis';
import { deleteUnder } from '../../sinks/redis/keys.js';
import { ConfigError } from '../../runtime/errors.js';
import { StateDirectory } from '../../state/state-directory.js';
import { ensureDatabase, migrate } from '../../sinks/postgres/migrate.js';
import { quoteIdent } from '../../sinks/postgres/writers.js';
import { contractOf } from '../../schemas/catalog.js';
import { checkInterrupted, type DemoEnvironment } from './environment.js';
import { APP_NAMES, type DemoPlan } from './plan.js';

const SINK_TABLES = ['routing_decisions', 'positions', 'ledger_entries', 'reconciliations'];
/** retention.ms of the demo's non-compacted topics: 30 days */
const RETENTION_MS = 30 * 24 * 3_600_000;

export interface ResetReport {
  truncated: string[];
  redisKeys: number;
  groups: string[];
  topicsDeleted: number;
  topicsCreated: string[];
}

export async function resetDemo(env: DemoEnvironment, plan: DemoPlan, admin: Admin, signal: AbortSignal): Promise<ResetReport> {
  const truncated = await resetPostgres(env, plan);
  checkInterrupted(signal);
  const redisKeys = await resetRedis(env, plan.redisPrefix);
  checkInterrupted(signal);
  const groups = await deleteGroups(admin, plan.allGroups, signal);
  const topicsDeleted = await deleteTopics(admin, plan.allTopics, signal);
  const topicsCreated = await createTopics(admin, plan, signal);
  for (const name of APP_NAMES) {
    const dir = new StateDirectory(plan.stateDir, plan.apps[name].applicationId);
    dir.lock(); // throws StateDirLockedError naming the live holder
    dir.unlock();
    rmSync(dir.root, { recursive: true, force: true });
  }
  return { truncated, redisKeys, groups, topicsDeleted, topicsCreated };
}

async function resetPostgres(env: DemoEnvironment, plan: DemoPlan): Promise<string[]> {
  await ensureDatabase(env.pg);
  await migrate(env.pg, plan.schema);
  const client = new pg.Client({ ...env.pg, application_name: 'weir-demo' });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const s = quoteIdent(plan.schema);
    await client.query(`TRUNCATE ${SINK_TABLES.map((t) => `${s}.${quoteIdent(t)}`).join(', ')}`);
    await client.query(`DELETE FROM ${s}.sink_offsets WHERE sink = ANY($1)`, [plan.sinks.map((k) => k.name)]);
    return SINK_TABLES.map((t) => `${plan.schema}.${t}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function resetRedis(env: DemoEnvironment, prefix: string): Promise<number> {
  const redis = new Redis({ ...env.redis, lazyConnect: true, maxRetriesPerRequest: 2, connectionName: 'weir-demo' });
  redis.on('error', () => undefined);
  await redis.connect();
  try {
    return await deleteUnder(redis, prefix);
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

async function deleteGroups(admin: Admin, groups: string[], signal: AbortSignal): Promise<string[]> {
  // A member of a run killed without leaving stays until its session times out (10 s by default).
  const deadline = Date.now() + 20_000;
  for (;;) {
    checkInterrupted(signal);
    const { groups: described } = await admin.describeGroups(groups);
    const live = described.filter((g) => g.members.length > 0);
    if (live.length === 0) {
      const existing = described.filter((g) => g.state !== 'Dead').map((g) => g.groupId);
      if (existing.length > 0) {
        try {
          await admin.deleteGroups(existing);
        } catch (err) {
          const failed = ((err as { groups?: Array<{ groupId: string; error?: { type?: string } }> }).groups ?? []).filter(
            (g) => g.error && g.error.type !== 'GROUP_ID_NOT_FOUND',
          );
          if (failed.length > 0 || !(err as { groups?: unknown }).groups) throw err;
        }
      }
      return existing;
    }
    if (Date.now() > deadline) {
      throw new ConfigError(
        `consumer group(s) ${live.map((g) => g.groupId).join(', ')} still have live members: is another weir demo (or weir deploy) running against these topics? Stop it first.`,
      );
    }
    await sleep(500);
  }
}

async function deleteTopics(admin: Admin, topics: string[], signal: AbortSignal): Promise<number> {
  const mine = new Set(topics);
  const existing = (await admin.listTopics()).filter((t) => mine.has(t));
  if (existing.length > 0) await admin.deleteTopics({ topics: existing, timeout: 30_000 });
  // Deletion completes in the background: wait until the broker no longer lists them.
  const deadline = Date.now() + 60_000;
  for (;;) {
    checkInterrupted(signal);
    const left = (await admin.listTopics()).filter((t) => mine.has(t));
    if (left.length === 0) return existing.length;
    if (Date.now() > deadline) throw new Error(`topics ${left.join(', ')} are still being deleted after 60 s`);
    await sleep(250);
  }
}

/**
 * Create every demo topic afresh: the catalog's (compacted where it says), and also the changelogs and dead-letter
 * topics the workers would create — right after a deletion the broker may still be removing a topic of the same
 * name and answer metadata requests for it with an error for a moment, which this retries and a worker would not.
 */
async function createTopics(admin: Admin, plan: DemoPlan, signal: AbortSignal): Promise<string[]> {
  const catalog = APP_NAMES.flatMap((n) => [...plan.apps[n].inputTopics, ...plan.apps[n].outputTopics]);
  const compact = [{ name: 'cleanup.policy', value: 'compact' }];
  // The stream's event times reach back about a week (late settlements, and it ends two days ago so the closing
  // payments are not in the future): keep such records longer than a dev broker's default retention would.
  const keep = [{ name: 'retention.ms', value: String(RETENTION_MS) }];
  const topics = [
    ...catalog.map((topic) => ({ topic, numPartitions: plan.partitions, configEntries: contractOf(topic).compacted ? compact : keep })),
    ...APP_NAMES.flatMap((n) => plan.apps[n].changelogs.map((topic) => ({ topic, numPartitions: plan.partitions, configEntries: compact }))),
    ...APP_NAMES.map((n) => ({ topic: plan.apps[n].deadLetterTopic, numPartitions: 1, configEntries: keep })),
  ].map((t) => ({ ...t, replicationFactor: -1 }));
  const deadline = Date.now() + 60_000;
  for (;;) {
    checkInterrupted(signal);
    try {
      const existing = new Set(await admin.listTopics());
      const missing = topics.filter((t) => !existing.has(t.topic));
      if (missing.length > 0) await admin.createTopics({ waitForLeaders: false, topics: missing });
      const meta = await admin.fetchTopicMetadata({ topics: topics.map((t) => t.topic) });
      const led = meta.topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0));
      if (led) return catalog.map((t) => `${t}${contractOf(t).compacted ? ' (compacted)' : ''}`);
    } catch (err) {
      // "marked for deletion", "does not host this topic-partition": the old topic is still going away
      const e = err as { type?: string; retriable?: boolean };
      if (!(e.type === 'TOPIC_ALREADY_EXISTS' || e.retriable) || Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline) throw new Error('the demo topics have no partition leaders after 60 s');
    await sleep(300);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
