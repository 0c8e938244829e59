/**
 * `weir stop <topology>`: stops the processes of a topology running on this machine (found by their run files),
 * as Ctrl-C on its deploy would: SIGTERM, each commits and leaves the group; SIGKILL after the grace period.
 * Mostly for `weir deploy --detach`.
 */
import { note, out, positiveNumber, seconds, settings, sleep, topologyArg } from '../common.js';
import { WeirError } from '../../runtime/errors.js';
import { applicationIdOf } from '../services.js';
import { isAlive, liveDeployPid, liveRunFiles, runDirOf } from '../run-files.js';

export interface StopFlags {
  timeout?: string;
  appId?: string;
}

export async function stopCommand(topologyName: string, flags: StopFlags): Promise<void> {
  const app = topologyArg(topologyName);
  const graceMs = 1000 * (flags.timeout === undefined ? 30 : positiveNumber('--timeout', flags.timeout));
  const s = settings();
  const applicationId = applicationIdOf(app, s, flags.appId);
  const runDir = runDirOf(s.WEIR_RUN_DIR, applicationId);
  const running = liveRunFiles(runDir);
  const deploy = liveDeployPid(runDir);
  if (running.length === 0 && deploy === undefined) {
    out(`${app.name} (application ${applicationId}) has no process running on this machine`);
    return;
  }
  const started = Date.now();
  // A foreground deploy stops its members itself (and exits 0); detached members get the signal directly.
  const targets = deploy !== undefined ? [{ pid: deploy, what: `its deploy (pid ${deploy})` }] : running.map((r) => ({ pid: r.pid, what: `${r.role} ${r.instance} (pid ${r.pid})` }));
  for (const t of targets) {
    try {
      process.kill(t.pid, 'SIGTERM');
    } catch {
      // gone meanwhile
    }
  }
  note(`sent SIGTERM to ${targets.map((t) => t.what).join(', ')}`);
  const all = [...running.map((r) => r.pid), ...(deploy !== undefined ? [deploy] : [])];
  while (all.some((pid) => isAlive(pid)) && Date.now() - started < graceMs) await sleep(100);
  const stuck = running.filter((r) => isAlive(r.pid));
  for (const r of stuck) {
    try {
      process.kill(r.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  if (stuck.length > 0) {
    throw new WeirError(`${stuck.map((r) => `pid ${r.pid}`).join(', ')} did not stop within ${seconds(graceMs)} and was killed; its tasks restore from their changelogs on the next start`);
  }
  out(`stopped ${running.length} ${running.length === 1 ? 'process' : 'processes'} of ${app.name} in ${seconds(Date.now() - started)}`);
}
