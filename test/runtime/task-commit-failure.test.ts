/**
 * A commit that fails after its abort worked (e.g. "Failed to find group coordinator" while the broker restarts)
 * throws the task's uncommitted work away. Whatever was queued behind it on the task — another commit (the task
 * manager queues one every interval while a commit is slow), a batch — must not commit input offsets past the lost
 * records nor process on top of the lost state. Real Task, TaskManager, StoreManager, collector and checkpoint over
 * the in-memory log; only the producer is scripted (its first commit fails).
 */
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { Task } from '../../runtime/task.js';
import { TaskManager } from '../../runtime/task-manager.js';
import { RecordCollector, type OutgoingRecord } from '../../runtime/record-collector.js';
import { InMemoryLog } from '../../runtime/test-driver.js';
import { StoreManager } from '../../state/store-manager.js';
import { tpKey, type SendResult, type TaskProducer, type TopicPartitionOffset } from '../../runtime/task-producer.js';
import { runningSumTopology } from '../fixtures/running-sum.js';

describe('a failed commit with work queued behind it', () => {
  it('commits nothing past the lost records; the restarted task processes them again, exactly once', async () => {
    const log = new InMemoryLog();
    const topology = runningSumTopology({ input: 'in', output: 'out', backend: 'memory' });
    const sub = topology.subTopologies[0]!;
    let failNextCommit = true;
    let commits = 0;

    class ScriptedProducer implements TaskProducer {
      readonly guarantee = 'exactly_once' as const;
      private pending: OutgoingRecord[] = [];
      async init() {}
      async send(records: OutgoingRecord[]): Promise<SendResult> {
        this.pending.push(...records);
        return new Map(records.map((r) => [tpKey(r.topic, r.partition), log.records(r.topic, r.partition).length + this.pending.length]));
      }
      async commit(offsets: TopicPartitionOffset[]) {
        await new Promise((r) => setTimeout(r, 20));
        if (failNextCommit) {
          failNextCommit = false;
          throw new Error('Failed to find group coordinator');
        }
        commits++;
        for (const r of this.pending) log.append(r.topic, r.partition, { key: r.key, value: r.value, timestamp: r.timestamp, headers: r.headers });
        this.pending = [];
        for (const o of offsets) log.committedOffsets.set(tpKey(o.topic, o.partition), o.offset);
      }
      async abort() {
        this.pending = [];
      }
      async close() {}
    }

    const seeks: number[] = [];
    const tm = new TaskManager({
      topology,
      log,
      logger: pino({ level: 'silent' }),
      createTask: () =>
        new Task({
          applicationId: 'commit-failure',
          id: '0_0',
          subTopology: sub,
          partition: 0,
          topology,
          stores: new StoreManager({ applicationId: 'commit-failure', taskId: '0_0', partition: 0, specs: sub.stores.map((s) => topology.stores.get(s)!), stateDir: null }),
          collector: new RecordCollector(() => 1),
          producer: new ScriptedProducer(),
          deadLetterTopic: 'dlq',
          processingErrorPolicy: 'fail',
          deserializationErrorPolicy: 'dead-letter',
          maxBufferedBytes: 1 << 30,
          events: {},
        }),
      fetchCommitted: async () => new Map([['in', log.committedOffsets.get(tpKey('in', 0)) ?? 0]]),
      pause: () => undefined,
      resume: () => undefined,
      seek: (_t, _p, o) => void seeks.push(o),
      onMigrated: () => undefined,
      onFatal: (e) => {
        throw e;
      },
    });

    await tm.onAssignment('m1', { in: [0] });
    const messages = [1, 2, 3].map((amount, i) => {
      const m = { offset: String(i), key: Buffer.from('k'), value: Buffer.from(JSON.stringify({ seq: i, amount })), timestamp: String(Date.now()), headers: {} };
      log.append('in', 0, { key: m.key, value: m.value, timestamp: Number(m.timestamp), headers: {} });
      return m;
    });
    const first = tm.taskFor('in', 0)!;
    for (const m of messages) await first.exclusive(() => first.process('in', 0, m));

    // two commits queued on the task, as the commit interval queues them while a commit is slow
    await Promise.all([tm.commit(first), tm.commit(first)]);
    expect(first.state).not.toBe('RUNNING');
    expect(commits).toBe(0); // the queued commit did not commit on top of the aborted one
    expect(log.committedOffsets.get(tpKey('in', 0))).toBeUndefined();
    expect(log.records('out', 0)).toHaveLength(0);

    // the task manager starts a fresh task from the last commit (here: the log start) and seeks there
    await new Promise((r) => setTimeout(r, 1200));
    const second = tm.taskFor('in', 0)!;
    expect(second).not.toBe(first);
    expect(second.state).toBe('RUNNING');
    expect(second.position('in')).toBe(0);
    expect(seeks.at(-1)).toBe(0);
    for (const m of messages) await second.exclusive(() => second.process('in', 0, m));
    await tm.commit(second);
    expect(commits).toBe(1);
    expect(log.committedOffsets.get(tpKey('in', 0))).toBe(3);
    expect(await second.store<string, unknown>('sums').get('k')).toMatchObject({ sum: 6, count: 3 });
    expect(log.records('out', 0)).toHaveLength(3);
    await tm.shutdown();
  });
});
