/**
 * `weir replay <topology>`: recovery after a bad deploy. Plans the replay (runtime/replay.ts), prints the plan, and
 * unless `--dry-run` carries it out: rebuilds the stores up to the replay point without output, then moves the
 * group's offsets there. The topology must be stopped (no live group members); deploying it again re-emits the
 * outputs from the replay point on. A replay that cannot be exact is refused with one sentence (exit 1).
 */
import { avroSerdesFor } from '../../topologies/index.js';
import { describePlan, executeReplay, planReplay, type ReplayTarget } from '../../runtime/replay.js';
import { note, out, seconds, settings, timestampArg, topologyArg } from '../common.js';
import { UsageError } from '../errors.js';
import { applicationIdOf, resolveServices } from '../services.js';
import { startProgress } from '../progress.js';

export interface ReplayFlags {
  toOffset?: string;
  toTimestamp?: string;
  toEarliest?: boolean;
  dryRun?: boolean;
  appId?: string;
}

export function parseOffsets(text: string): Array<{ topic?: string; partition: number; offset: number }> {
  const items = text.split(',').map((x) => x.trim()).filter(Boolean);
  if (items.length === 0) throw new UsageError(`--to-offset takes partition:offset[,partition:offset…] or topic:partition:offset, not '${text}'`);
  return items.map((item) => {
    const parts = item.split(':');
    const nums = parts.slice(-2);
    if ((parts.length !== 2 && parts.length !== 3) || !nums.every((n) => /^\d+$/.test(n)) || (parts.length === 3 && !/^[A-Za-z0-9._-]+$/.test(parts[0]!))) {
      throw new UsageError(`--to-offset: '${item}' is not partition:offset or topic:partition:offset (e.g. 0:120,1:98 or trades:0:120)`);
    }
    return { ...(parts.length === 3 ? { topic: parts[0]! } : {}), partition: Number(nums[0]), offset: Number(nums[1]) };
  });
}

function targetOf(flags: ReplayFlags, inputs: readonly string[]): ReplayTarget {
  const given = [flags.toOffset !== undefined, flags.toTimestamp !== undefined, flags.toEarliest === true].filter(Boolean).length;
  if (given !== 1) throw new UsageError('give exactly one of --to-offset, --to-timestamp, --to-earliest');
  if (flags.toEarliest) return { kind: 'earliest' };
  if (flags.toTimestamp !== undefined) return { kind: 'timestamp', timestamp: timestampArg('--to-timestamp', flags.toTimestamp) };
  const offsets = parseOffsets(flags.toOffset!);
  for (const o of offsets) {
    if (o.topic === undefined && inputs.length > 1) {
      throw new UsageError(`this topology reads ${inputs.join(' and ')}: give --to-offset as topic:partition:offset`);
    }
    if (o.topic !== undefined && !inputs.includes(o.topic)) throw new UsageError(`--to-offset: '${o.topic}' is not an input of this topology (${inputs.join(', ')})`);
  }
  return { kind: 'offsets', offsets };
}

export async function replayCommand(topologyName: string, flags: ReplayFlags): Promise<void> {
  const app = topologyArg(topologyName);
  const target = targetOf(flags, app.inputs.map((c) => c.topic));
  const s = settings();
  const applicationId = applicationIdOf(app, s, flags.appId);
  const services = await resolveServices(s, note);
  const topology = app.build(avroSerdesFor(services.registry));
  const opts = { applicationId, topology, brokers: services.brokers, kafka: services.kafka, target };

  const admin = await services.admin();
  let plan;
  try {
    plan = await planReplay(opts, admin);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  out(describePlan(plan));
  if (flags.dryRun) {
    out('dry run: nothing was changed');
    return;
  }

  const total = plan.tasks.filter((t) => t.stores.length > 0).reduce((sum, t) => sum + t.rebuildRecords, 0);
  const progress = startProgress({ label: `rebuilding the state of ${app.name}`, unit: 'records', total });
  const done = new Map<string, number>();
  const started = Date.now();
  let rebuilt: number;
  try {
    ({ rebuilt } = await executeReplay(
      {
        ...opts,
        onProgress: (p) => {
          done.set(p.taskId, p.records);
          progress.update([...done.values()].reduce((a, b) => a + b, 0));
        },
      },
      plan,
    ));
  } finally {
    progress.stop();
  }
  const reemit = plan.partitions.reduce((sum, p) => sum + (p.end - p.target), 0);
  out(
    `replayed ${app.name} (application ${applicationId}) in ${seconds(Date.now() - started)}: state rebuilt from ${rebuilt} records, offsets moved to the replay point; ` +
      `deploy it again (weir deploy ${app.name}) to re-emit the outputs of ${reemit} records`,
  );
}
