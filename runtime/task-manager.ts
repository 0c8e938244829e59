import type { Logger } from 'pino';
import type { Topology } from './topology.js';
import { Task } from './task.js';
import { taskIdOf } from './assignor.js';
import type { LogReader } from '../state/changelog-reader.js';
import { TaskCorruptedError, TaskMigratedError } from './errors.js';

export interface TopicPartitions {
  topic: string;
  partitions: number[];
}

/** What the task manager needs from the worker's consumer and Kafka. */
export interface TaskManagerDeps {
  topology: Topology;
  log: LogReader;
  logger: Logger;
  createTask(subTopologyId: number, partition: number): Task;
  /** Committed offsets (next to consume) of the task's input partitions, read after the task fenced older producers. */
  fetchCommitted(task: Task): Promise<Map<string, number | null>>;
  pause(tps: TopicPartitions[]): void;
  resume(tps: TopicPartitions[]): void;
  seek(topic: string, partition: number, offset: number): void;
  /** Another worker owns one of our tasks: close everything as a zombie and rejoin. */
  onMigrated(err: TaskMigratedError): void;
  onFatal(err: unknown): void;
  onStateChange?(): void;
}

/**
 * Owns the tasks of one worker.
 * Responsible for:
 * - turning an assignment into tasks: close those that left, create, restore and start those that came;
 * - keeping a new task's partitions paused until it is restored and positioned at its committed offsets;
 * - committing tasks on the interval and on the record bound, and closing them clean or dirty;
 * - handling task errors by the recovery they ask for (migrated: rejoin; corrupted: restore again).
 */
export class TaskManager {
  private readonly tasks = new Map<string, Task>();
  private assignmentChain: Promise<void> = Promise.resolve();
  private memberId: string | null = null;
  private assigned = false;
  private closing = false;

  constructor(private readonly deps: TaskManagerDeps) {}

  get taskIds(): string[] {
    return [...this.tasks.keys()];
  }

  get allTasks(): Task[] {
    return [...this.tasks.values()];
  }

  /** Ready when an assignment arrived and every task of it runs. */
  get ready(): boolean {
    return this.assigned && [...this.tasks.values()].every((t) => t.state === 'RUNNING');
  }

  taskFor(topic: string, partition: number): Task | undefined {
    const sub = this.deps.topology.subTopologyOfTopic(topic);
    return this.tasks.get(taskIdOf(sub.id, partition));
  }

  onAssignment(memberId: string, assignment: Record<string, number[]>): Promise<void> {
    const run = this.assignmentChain.then(() => this.applyAssignment(memberId, assignment));
    this.assignmentChain = run.catch((err) => this.deps.onFatal(err));
    return run;
  }

  private async applyAssignment(memberId: string, assignment: Record<string, number[]>): Promise<void> {
    if (this.closing) return;
    const wanted = new Map<string, { sub: number; partition: number }>();
    for (const [topic, partitions] of Object.entries(assignment)) {
      const sub = this.deps.topology.subTopologyOfTopic(topic);
      for (const p of partitions) wanted.set(taskIdOf(sub.id, p), { sub: sub.id, partition: p });
    }
    if (this.memberId !== null && this.memberId !== memberId) {
      // We were dropped from the group and rejoined: every task may have had another owner since.
      this.deps.logger.warn({ previous: this.memberId, memberId }, 'rejoined as a new member; closing all tasks as zombies');
      await this.closeAll(false);
    }
    this.memberId = memberId;
    for (const [id, task] of this.tasks) {
      if (wanted.has(id)) continue;
      this.tasks.delete(id);
      await task.exclusive(() => task.closeClean()).catch((err) => {
        this.deps.logger.warn({ task: id, err: (err as Error).message }, 'revoked task closed without its last commit');
      });
    }
    this.assigned = true;
    const starting: Promise<void>[] = [];
    for (const [id, { sub, partition }] of wanted) {
      if (this.tasks.has(id)) continue;
      starting.push(this.startTask(sub, partition));
    }
    this.deps.onStateChange?.();
    await Promise.all(starting);
  }

  private tps(task: Task): TopicPartitions[] {
    return task.inputTopics.map((topic) => ({ topic, partitions: [task.partition] }));
  }

  private async startTask(sub: number, partition: number): Promise<void> {
    const task = this.deps.createTask(sub, partition);
    this.tasks.set(task.id, task);
    this.deps.pause(this.tps(task));
    try {
      await task.exclusive(async () => {
        await task.restore(this.deps.log);
        const committed = await this.deps.fetchCommitted(task);
        await task.start(committed);
        for (const [topic, offset] of committed) if (offset !== null) this.deps.seek(topic, partition, offset);
      });
    } catch (err) {
      this.tasks.delete(task.id);
      await task.closeDirty().catch(() => undefined);
      if (this.closing) return;
      this.deps.logger.error({ task: task.id, err: (err as Error).message }, 'task failed to start; retrying');
      await new Promise((r) => setTimeout(r, 1000));
      if (!this.closing && !this.tasks.has(task.id)) return this.startTask(sub, partition);
      return;
    }
    if (this.tasks.get(task.id) === task) this.deps.resume(this.tps(task));
    this.deps.logger.info({ task: task.id }, 'task running');
    this.deps.onStateChange?.();
  }

  /**
   * Commit one task under its lock, handling the errors a commit can raise, if it last committed at least
   * `minMsSinceCommit` ago. That is checked again inside the lock: a commit queued behind a slow one finds the task
   * just committed and does nothing.
   */
  async commit(task: Task, minMsSinceCommit = 0): Promise<void> {
    await task
      .exclusive(async () => {
        if (task.needsCommit && task.msSinceCommit >= minMsSinceCommit) await task.commit();
      })
      .catch((err) => this.handleTaskError(task, err));
  }

  async commitDue(intervalMs: number): Promise<void> {
    await Promise.all([...this.tasks.values()].filter((t) => t.needsCommit && t.msSinceCommit >= intervalMs).map((t) => this.commit(t, intervalMs)));
  }

  async commitAll(): Promise<void> {
    await Promise.all([...this.tasks.values()].filter((t) => t.needsCommit).map((t) => this.commit(t)));
  }

  async punctuateWallClock(): Promise<void> {
    await Promise.all(
      [...this.tasks.values()]
        .filter((t) => t.state === 'RUNNING')
        .map((t) => t.exclusive(() => t.punctuateWallClock()).catch((err) => this.handleTaskError(t, err))),
    );
  }

  async handleTaskError(task: Task, err: unknown): Promise<void> {
    if (err instanceof TaskMigratedError) {
      this.deps.logger.warn({ task: task.id }, 'task fenced by another worker');
      this.deps.onMigrated(err);
      return;
    }
    if (err instanceof TaskCorruptedError) {
      this.deps.logger.warn({ task: task.id, err: err.message }, 'task corrupted; restoring it again');
      if (this.tasks.get(task.id) !== task) return;
      this.tasks.delete(task.id);
      this.deps.pause(this.tps(task));
      await task.closeDirty().catch(() => undefined);
      // A corruption caused by an outage would repeat at once: give it a moment.
      await new Promise((r) => setTimeout(r, 1000));
      if (this.closing || this.tasks.has(task.id)) return;
      await this.startTask(Number(task.id.split('_')[0]), task.partition);
      return;
    }
    this.deps.onFatal(err);
  }

  /** Close every task: clean commits them first, dirty drops their uncommitted work. */
  async closeAll(clean: boolean): Promise<void> {
    const tasks = [...this.tasks.values()];
    this.tasks.clear();
    await Promise.all(
      tasks.map((t) =>
        t.exclusive(() => (clean ? t.closeClean() : t.closeDirty())).catch((err) => {
          this.deps.logger.warn({ task: t.id, err: (err as Error).message }, 'task closed dirty');
        }),
      ),
    );
    this.deps.onStateChange?.();
  }

  async shutdown(): Promise<void> {
    this.closing = true;
    await this.assignmentChain;
    await this.closeAll(true);
  }

  /** Forget membership after a deliberate rejoin, so the next assignment starts from nothing. */
  reset(): void {
    this.memberId = null;
    this.assigned = false;
    this.closing = false;
  }
}
