/**
 * `weir status [<topology>]`: how each application is doing, from Kafka and from its processes on this machine.
 * - the consumer group: state and members, each member's partitions decoded from its assignment and named as tasks;
 * - lag per input partition: the group's committed offset against the partition's end;
 * - dead letters: records in `<applicationId>-dead-letters` (counted read_committed: transaction markers take
 *   offsets too, so end offsets would overcount);
 * - every process with a run file (cli/run-files.ts): its /health — ready or not, tasks and their states, restore
 *   progress, records processed;
 * - sinks (the `weir sink` processes of a deploy): state, breaker, lag (records not yet in the database) and last error.
 * `--json` prints the same as one JSON object.
 */
import { AssignerProtocol, type Admin } from 'kafkajs';
import type { Serde } from '../../runtime/serde.js';
import { PartitionReader } from '../../runtime/partition-reader.js';
import { applications, type Application, type SerdeFor } from '../../topologies/index.js';
import { note, out, settings, topologyArg } from '../common.js';
import { applicationIdOf, resolveServices, type Services } from '../services.js';
import { liveRunFiles, runDirOf, type MemberRole } from '../run-files.js';
import type { WorkerDetails } from './worker.js';
import type { SinkRunnerStatus } from '../../sinks/sink-runner.js';

export interface StatusFlags {
  json?: boolean;
  appId?: string;
}

export interface GroupMemberStatus {
  memberId: string;
  clientId: string;
  host: string;
  /** The worker's pid when its client id carries it (workers started by weir do). */
  pid: number | null;
  partitions: Record<string, number[]>;
  tasks: string[];
}

export interface PartitionLag {
  topic: string;
  partition: number;
  /** Next offset the group will read; null when it has committed nothing. */
  committed: number | null;
  end: number;
  lag: number;
}

export interface ProcessStatus {
  pid: number;
  role: MemberRole;
  instance: number;
  url: string;
  reachable: boolean;
  ready: boolean | null;
  details: WorkerDetails | Record<string, unknown> | null;
  error?: string;
}

export interface ApplicationStatus {
  topology: string;
  applicationId: string;
  missingTopics: string[];
  group: { state: string; members: GroupMemberStatus[] };
  lag: PartitionLag[];
  totalLag: number;
  deadLetters: { topic: string; count: number | null };
  processes: ProcessStatus[];
  /** Per sink process on this machine: its runner's state, breaker, total lag (null: a partition not read yet). */
  sinks: SinkStatus[];
}

export interface SinkStatus {
  name: string;
  kind: string;
  state: string;
  breaker: string;
  lag: number | null;
  lastError: string | null;
}

/** Counting more dead letters than this exactly would take long; beyond it the end offset is shown instead. */
const COUNT_LIMIT = 500_000;

export async function statusCommand(topologyName: string | undefined, flags: StatusFlags): Promise<void> {
  const apps = topologyName === undefined ? Object.values(applications) : [topologyArg(topologyName)];
  const s = settings();
  const services = await resolveServices(s, note, { kafka: true, registry: false });
  const admin = await services.admin();
  const statuses: ApplicationStatus[] = [];
  try {
    const existing = new Set(await admin.listTopics());
    for (const app of apps) {
      statuses.push(await statusOf(app, applicationIdOf(app, s, topologyName === undefined ? undefined : flags.appId), admin, services, existing, s.WEIR_RUN_DIR));
    }
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  if (flags.json) out(JSON.stringify({ applications: statuses }, null, 2));
  else for (const st of statuses) out(render(st));
}

/** A topology's shape (sub-topologies, topics) needs no serdes that work. */
const noSerde: Serde<never> = {
  serialize: () => {
    throw new Error('not for use');
  },
  deserialize: () => {
    throw new Error('not for use');
  },
};

async function statusOf(app: Application, applicationId: string, admin: Admin, services: Services, existing: Set<string>, runRoot: string): Promise<ApplicationStatus> {
  const topology = app.build((() => noSerde) as SerdeFor, { backend: 'memory' });
  const inputs = topology.sourceTopics;
  const missingTopics = [...inputs, ...topology.sinkTopics].filter((t) => !existing.has(t));

  // The group and what each member holds.
  const { groups } = await admin.describeGroups([applicationId]);
  const g = groups[0];
  const members: GroupMemberStatus[] = (g?.members ?? []).map((m) => {
    let partitions: Record<string, number[]> = {};
    try {
      const decoded = m.memberAssignment.length > 0 ? AssignerProtocol.MemberAssignment.decode(m.memberAssignment) : null;
      partitions = decoded?.assignment ?? {};
    } catch {
      partitions = {};
    }
    const tasks = topology.subTopologies.flatMap((sub) => (partitions[sub.sourceTopics[0]!] ?? []).map((p) => `${sub.id}_${p}`));
    const pid = /-(\d+)$/.exec(m.clientId)?.[1];
    return {
      memberId: m.memberId,
      clientId: m.clientId,
      host: m.clientHost.replace(/^\//, ''),
      pid: pid === undefined ? null : Number(pid),
      partitions,
      tasks: tasks.sort(byTask),
    };
  });

  // Lag per input partition.
  const lag: PartitionLag[] = [];
  const present = inputs.filter((t) => existing.has(t));
  if (present.length > 0) {
    const committed = await admin.fetchOffsets({ groupId: applicationId, topics: present });
    for (const topic of present) {
      const ends = await admin.fetchTopicOffsets(topic);
      for (const e of ends.sort((a, b) => a.partition - b.partition)) {
        const c = committed.find((x) => x.topic === topic)?.partitions.find((p) => p.partition === e.partition);
        const offset = c && Number(c.offset) >= 0 ? Number(c.offset) : null;
        const end = Number(e.high);
        lag.push({ topic, partition: e.partition, committed: offset, end, lag: Math.max(0, end - (offset ?? Number(e.low))) });
      }
    }
  }

  // Dead letters.
  const dlq = `${applicationId}-dead-letters`;
  const deadLetters = { topic: dlq, count: existing.has(dlq) ? await countRecords(services, admin, dlq) : 0 };

  // The processes on this machine, through their health servers.
  const processes: ProcessStatus[] = await Promise.all(
    liveRunFiles(runDirOf(runRoot, applicationId)).map(async (r): Promise<ProcessStatus> => {
      const base = { pid: r.pid, role: r.role, instance: r.instance, url: r.url };
      try {
        const res = await fetch(`${r.url}/health`, { signal: AbortSignal.timeout(3000) });
        const body = (await res.json()) as { live?: boolean; ready?: boolean; details?: WorkerDetails };
        return { ...base, reachable: true, ready: body.ready ?? null, details: body.details ?? null };
      } catch (err) {
        return { ...base, reachable: false, ready: null, details: null, error: (err as Error).message };
      }
    }),
  );

  // A sink process's /health details are its SinkRunner status (cli/commands/sink.ts).
  const sinks = processes
    .filter((p) => p.role === 'sink' && p.details)
    .map((p): SinkStatus => {
      const d = p.details as Partial<SinkRunnerStatus> & { kind?: string };
      const lags = (d.partitions ?? []).map((x) => x.lag);
      return {
        name: d.sink ?? `sink ${p.instance}`,
        kind: d.kind ?? 'unknown',
        state: d.state ?? 'unknown',
        breaker: d.breaker ?? 'unknown',
        lag: lags.length === 0 || lags.some((x) => x === null) ? null : lags.reduce<number>((a, b) => a + (b ?? 0), 0),
        lastError: d.lastError ? `${d.lastError.message} (${d.lastError.at})` : null,
      };
    });

  return {
    topology: app.name,
    applicationId,
    missingTopics,
    group: { state: g?.state ?? 'Unknown', members },
    lag,
    totalLag: lag.reduce((sum, l) => sum + l.lag, 0),
    deadLetters,
    processes,
    sinks,
  };
}

function byTask(a: string, b: string): number {
  const [as, ap] = a.split('_').map(Number);
  const [bs, bp] = b.split('_').map(Number);
  return as! - bs! || ap! - bp!;
}

async function countRecords(services: Services, admin: Admin, topic: string): Promise<number | null> {
  const offsets = await admin.fetchTopicOffsets(topic);
  const span = offsets.reduce((sum, o) => sum + Number(o.high) - Number(o.low), 0);
  if (span === 0) return 0;
  if (span > COUNT_LIMIT) return null;
  const reader = new PartitionReader(services.kafka);
  let n = 0;
  try {
    for (const o of offsets) {
      if (Number(o.high) === Number(o.low)) continue;
      await reader.read(topic, o.partition, null, (messages) => void (n += messages.length));
    }
  } finally {
    await reader.close().catch(() => undefined);
  }
  return n;
}

function render(st: ApplicationStatus): string {
  const lines = [`${st.topology} (application ${st.applicationId})`];
  if (st.missingTopics.length > 0) lines.push(`  topics not created yet: ${st.missingTopics.join(', ')} (weir deploy ${st.topology} creates them)`);
  const m = st.group.members;
  lines.push(`  group: ${st.group.state === 'Dead' || st.group.state === 'Empty' ? `${st.group.state.toLowerCase()} (no workers running)` : st.group.state}, ${m.length} member${m.length === 1 ? '' : 's'}`);
  for (const x of m) {
    const where = [x.pid !== null ? `pid ${x.pid}` : '', x.host].filter(Boolean).join(', ');
    lines.push(`    ${x.clientId} (${where}): tasks ${x.tasks.join(' ') || 'none'}`);
  }
  if (st.lag.length > 0) {
    lines.push(`  lag: ${st.totalLag} record${st.totalLag === 1 ? '' : 's'}`);
    for (const l of st.lag) {
      lines.push(`    ${`${l.topic}/${l.partition}`.padEnd(24)} committed ${String(l.committed ?? '-').padStart(8)}  end ${String(l.end).padStart(8)}  lag ${l.lag}`);
    }
  }
  lines.push(`  dead letters: ${st.deadLetters.count === null ? `more than ${COUNT_LIMIT} (not counted)` : st.deadLetters.count} in ${st.deadLetters.topic}`);
  if (st.processes.length === 0) lines.push('  processes on this machine: none');
  else lines.push('  processes on this machine:');
  for (const p of st.processes) {
    if (!p.reachable) {
      lines.push(`    ${p.role} ${p.instance}  pid ${p.pid}  ${p.url}  not answering (${p.error})`);
      continue;
    }
    const d = p.details as WorkerDetails | null;
    const head = `    ${p.role} ${p.instance}  pid ${p.pid}  ${p.url}  ${p.ready ? 'ready' : 'NOT READY'}`;
    if (p.role !== 'worker' || !d) {
      lines.push(head);
      continue;
    }
    lines.push(`${head}  processed ${d.processed}, dead-lettered ${d.deadLetters}`);
    const tasks = [...d.tasks].sort((a, b) => byTask(a.id, b.id)).map((t) => {
      const left = Object.entries(d.restore[t.id] ?? {})
        .filter(([, r]) => r.next < r.end)
        .map(([store, r]) => `${store} ${r.end - r.next} left`);
      return `${t.id} ${t.state}${left.length > 0 ? ` (restoring: ${left.join(', ')})` : ''}`;
    });
    lines.push(`      tasks: ${tasks.join(', ') || 'none'}`);
  }
  if (st.sinks.length === 0) lines.push('  sinks on this machine: none');
  else lines.push('  sinks on this machine:');
  for (const x of st.sinks) {
    lines.push(`    ${x.name} (${x.kind})  ${x.state}, breaker ${x.breaker}, lag ${x.lag ?? 'unknown (a partition not read yet)'}`);
    if (x.lastError) lines.push(`      last error: ${x.lastError}`);
  }
  return lines.join('\n');
}
