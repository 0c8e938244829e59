/**
 * The processes a deploy starts for a topology: its members. Each is a `weir <command>` child that writes a run
 * file with the URL of its health server and answers /health/readiness; the supervisor treats them all alike.
 */
import type { Application } from '../../topologies/index.js';
import type { MemberRole } from '../run-files.js';

export interface MemberSpec {
  role: MemberRole;
  /** Index among the members of its role. */
  instance: number;
  /** For messages: "worker 1". */
  label: string;
  /** Arguments of the `weir` command that runs it. */
  args: string[];
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
 * HOOK for the sinks (Postgres, Redis; sinks/): the sink processes of a topology's outputs, started and supervised
 * with its workers. To add them: a hidden `weir sink <topology> --sink <name>` command (cli/commands/) that runs a
 * SinkRunner, serves its `status()` as /health details (readiness: the runner is running) and writes a run file
 * with role 'sink' (cli/run-files.ts); then return one MemberSpec per sink here, e.g.
 *   { role: 'sink', instance: 0, label: 'sink trades-pg', args: ['sink', app.name, '--sink', 'trades-pg', '--app-id', applicationId] }
 * `weir status` already lists every run file's /health details by role (see SINK HOOK in commands/status.ts).
 */
export function sinkMembers(_app: Application, _applicationId: string): MemberSpec[] {
  return [];
}
