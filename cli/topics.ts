/**
 * Creating or checking the topics of the catalog before records are produced or a topology starts.
 * Responsible for:
 * - creating missing topics with WEIR_PARTITIONS partitions (or the partition count of an existing topic they are
 *   co-partitioned with), compacted where the catalog says so (`positions`);
 * - refusing co-partitioned topics whose partition counts differ (a tenant's agents and conversations would meet in
 *   different tasks);
 * - saying so when an existing topic differs from what would be created (partitions, compaction), and using it.
 * Changelog and dead-letter topics are the workers' own: they create them at start.
 */
import kafkajs, { type Admin } from 'kafkajs';
import { TopologyError } from '../runtime/errors.js';
import type { TopicContract } from '../schemas/catalog.js';

const { ConfigResourceTypes } = kafkajs;

export interface TopicsReport {
  /** Partition count of every topic asked about. */
  partitions: Map<string, number>;
  created: string[];
  notes: string[];
}

export interface EnsureTopicsOptions {
  /** Partitions of a new topic (WEIR_PARTITIONS). */
  partitions: number;
  /** Groups of co-partitioned topics (a topology's sub-topology inputs): equal partition counts. */
  coPartitioned: string[][];
}

export async function ensureTopics(admin: Admin, contracts: readonly TopicContract[], opts: EnsureTopicsOptions): Promise<TopicsReport> {
  const existing = new Set(await admin.listTopics());
  const topics = contracts.map((c) => c.topic);
  const counts = new Map<string, number>();
  const present = topics.filter((t) => existing.has(t));
  if (present.length > 0) {
    const meta = await admin.fetchTopicMetadata({ topics: present });
    for (const t of meta.topics) counts.set(t.name, t.partitions.length);
  }

  const missing = contracts.filter((c) => !existing.has(c.topic));
  const created: string[] = [];
  if (missing.length > 0) {
    const toCreate = missing.map((c) => {
      // Join an existing co-partitioned topic's count, so the group stays equal.
      const group = opts.coPartitioned.find((g) => g.includes(c.topic)) ?? [];
      const sibling = group.map((t) => counts.get(t)).find((n) => n !== undefined);
      const numPartitions = sibling ?? opts.partitions;
      return {
        topic: c.topic,
        numPartitions,
        replicationFactor: -1,
        configEntries: c.compacted ? [{ name: 'cleanup.policy', value: 'compact' }] : [],
      };
    });
    try {
      await admin.createTopics({ waitForLeaders: true, topics: toCreate });
    } catch (err) {
      // Another command may have created them at the same moment.
      if ((err as { type?: string }).type !== 'TOPIC_ALREADY_EXISTS') throw err;
    }
    const meta = await admin.fetchTopicMetadata({ topics: toCreate.map((t) => t.topic) });
    for (const t of meta.topics) counts.set(t.name, t.partitions.length);
    created.push(...toCreate.map((t) => `${t.topic} (${t.numPartitions} partitions${t.configEntries.length > 0 ? ', compacted' : ''})`));
  }

  const notes: string[] = [];
  for (const group of opts.coPartitioned) {
    const known = group.filter((t) => counts.has(t));
    const distinct = new Set(known.map((t) => counts.get(t)));
    if (distinct.size > 1) {
      throw new TopologyError(
        `co-partitioned topics must have the same partition count, but ${known.map((t) => `${t} has ${counts.get(t)}`).join(' and ')}; recreate one of them`,
      );
    }
  }
  for (const t of present) {
    const n = counts.get(t)!;
    if (n !== opts.partitions) notes.push(`topic ${t} exists with ${n} partitions (WEIR_PARTITIONS is ${opts.partitions}); it is used as it is`);
  }
  const compacted = contracts.filter((c) => c.compacted && existing.has(c.topic));
  if (compacted.length > 0) {
    const res = await admin.describeConfigs({
      includeSynonyms: false,
      resources: compacted.map((c) => ({ type: ConfigResourceTypes.TOPIC, name: c.topic, configNames: ['cleanup.policy'] })),
    });
    for (const r of res.resources) {
      const policy = r.configEntries.find((e) => e.configName === 'cleanup.policy')?.configValue ?? '';
      if (!policy.split(',').includes('compact')) {
        notes.push(`topic ${r.resourceName} should be compacted (cleanup.policy=compact) but has cleanup.policy=${policy || 'delete'}; it keeps every update until retention deletes it`);
      }
    }
  }
  return { partitions: counts, created, notes };
}
