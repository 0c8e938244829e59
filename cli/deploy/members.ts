/**
 * The processes a deploy starts for a topology: its members. Each is a `weir <command>` child that writes a run
 * file with the URL of its health server and answers /health/readiness; the supervisor treats them all alike.
 */
import type { Application } from '../../topologies/index.js';
import type { MemberRole } from '../run-files.js';
import { applicationSinkPlans, type SinkKind } from '../../sinks/applications.js';

export interface MemberSpec {
  role: MemberRole;
  /** Index among the members of its role. */
  instance: number;
  /** For messages: "worker 1". */
  label: string;
  /** Arguments of the `weir` command that runs it. */
  args: string[];
  /** A sink's name (its group and the owner of its stored offsets) and kind. */
  sink?: { name: string; kind: SinkKind };
}

export interface MembersOptions {
  instances: number;
}

export function membersOf(app: Application, applicationId: string, opts: MembersOptions): MemberSpec[] {
  const workers: MemberSpec[] = Array.from({ length: opts.instances }, (_, i) => ({
    role: 'worker' as const,
    instance: i,
    label: `worker ${i}`,
    args: ['worker', app.name, '--instance', String(i), '--app-id', applicationId],
  }));
  return [...workers, ...sinkMembers(app, applicationId)];
}

/**
 * The sink processes of a topology's outputs (sinks/applications.ts: Postgres and, where it has anything to write
 * there, Redis), one per kind, started and supervised with its workers.
 */
export function sinkMembers(app: Application, applicationId: string): MemberSpec[] {
  return applicationSinkPlans({ name: app.name, applicationId }).map((plan, i) => ({
    role: 'sink' as const,
    instance: i,
    label: `sink ${plan.name}`,
    args: ['sink', app.name, '--kind', plan.kind, '--instance', String(i), '--app-id', applicationId],
    sink: { name: plan.name, kind: plan.kind },
  }));
}
