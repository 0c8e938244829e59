/**
 * The processes of the chaos run: for each application the members `weir deploy --instances N` would start
 * (cli/deploy/members.ts: N `weir worker` processes and its `weir sink` processes, with the same arguments), each
 * spawned through the deploy's own Supervisor (cli/deploy/supervisor.ts), which also waits for its readiness.
 *
 * The members are spawned here rather than by `weir deploy --detach` so that this process is their parent: they run
 * `--supervised` and stop by themselves when the chaos run dies, and their exits are seen at once. One Supervisor per
 * incarnation of a member: a Supervisor waits for all its members, and a killed one never gets ready again.
 * A member that exits without being killed here is reported (`onOwnExit`) and started again, as a process manager
 * would, so the run can go on and say so at the end.
 */
import { applications, type ApplicationName } from '../../topologies/index.js';
import { membersOf, type MemberSpec } from '../../cli/deploy/members.js';
import { Supervisor, type Member } from '../../cli/deploy/supervisor.js';
import { runDirOf } from '../../cli/run-files.js';

export interface Slot {
  app: ApplicationName;
  applicationId: string;
  spec: MemberSpec;
  /** "trades worker 2", "trades sink chaos-weir-trades-redis" */
  label: string;
  /** a sink's name (`<applicationId>-<kind>`) and kind (from its MemberSpec) */
  sink?: MemberSpec['sink'];
  supervisor: Supervisor | null;
  member: Member | null;
  /** set while this run kills it on purpose */
  killing: boolean;
  /** operations on the slot run one after the other */
  busy: Promise<unknown>;
}

export interface FleetOptions {
  /** WEIR_RUN_DIR of the members (absolute) */
  runRoot: string;
  /** environment of every member (services, schema, prefix, directories) */
  env: Record<string, string>;
  /** members' error lines (to the run's log file) */
  log: (line: string) => void;
  /** a member exited without being killed: what happened */
  onOwnExit: (slot: Slot, how: string) => void;
}

export class Fleet {
  readonly slots: Slot[] = [];
  private stopping = false;

  constructor(private readonly opts: FleetOptions) {}

  add(app: ApplicationName, applicationId: string, workers: number): void {
    for (const spec of membersOf(applications[app], applicationId, { instances: workers })) {
      this.slots.push({
        app,
        applicationId,
        spec,
        label: `${app} ${spec.label}`,
        ...(spec.sink ? { sink: spec.sink } : {}),
        supervisor: null,
        member: null,
        killing: false,
        busy: Promise.resolve(),
      });
    }
  }

  get workers(): Slot[] {
    return this.slots.filter((s) => s.spec.role === 'worker');
  }

  get sinks(): Slot[] {
    return this.slots.filter((s) => s.spec.role === 'sink');
  }

  /** Start every member and wait until all are ready. */
  async startAll(timeoutMs: number): Promise<void> {
    for (const slot of this.slots) this.spawn(slot);
    await Promise.all(this.slots.map((s) => s.supervisor!.waitReady(timeoutMs)));
  }

  /** SIGKILL the member and wait until it is gone; returns its pid. */
  kill(slot: Slot): Promise<number> {
    return this.serially(slot, async () => {
      const m = slot.member!;
      slot.killing = true;
      try {
        process.kill(m.pid, 'SIGKILL');
      } catch {
        // gone already
      }
      const deadline = Date.now() + 15_000;
      while (!m.exited && Date.now() < deadline) await sleep(50);
      if (!m.exited) throw new Error(`${slot.label} (pid ${m.pid}) did not go after SIGKILL`);
      return m.pid;
    });
  }

  /** Start the member again (same arguments, same state directory) and wait until it is ready; returns its pid. */
  restart(slot: Slot, timeoutMs: number): Promise<number> {
    return this.serially(slot, async () => {
      slot.killing = false;
      const sup = this.spawn(slot);
      await sup.waitReady(timeoutMs);
      return slot.member!.pid;
    });
  }

  /** SIGTERM to every member (workers commit and leave, sinks flush), SIGKILL after `graceMs`; true when all stopped cleanly. */
  async stopAll(graceMs: number): Promise<boolean> {
    this.stopping = true;
    await Promise.all(this.slots.map((s) => s.busy.catch(() => undefined)));
    const clean = await Promise.all(this.slots.map((s) => s.supervisor?.stop(graceMs) ?? true));
    return clean.every(Boolean);
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  private spawn(slot: Slot): Supervisor {
    const sup = new Supervisor({
      runDir: runDirOf(this.opts.runRoot, slot.applicationId),
      env: this.opts.env,
      detach: false,
      report: (line) => this.opts.log(`${slot.app} ${line}`),
    });
    slot.member = sup.start(slot.spec);
    slot.supervisor = sup;
    sup.watch((m) => {
      if (this.stopping || slot.killing || slot.member !== m) return;
      this.opts.onOwnExit(slot, `${m.exitDescription}${sup.reason(m)}`);
    });
    return sup;
  }

  private serially<T>(slot: Slot, fn: () => Promise<T>): Promise<T> {
    const next = slot.busy.catch(() => undefined).then(fn);
    slot.busy = next;
    return next;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
