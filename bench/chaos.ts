/**
 * `npm run chaos [-- --short]`: the chaos suite (bench/chaos/): the three applications with three worker processes
 * each and their sink processes, under steady load, through rounds of SIGKILLed workers and sinks, cut Postgres and
 * Redis connections, a broker restart and malformed records; then every table and key checked against a
 * recomputation from the input. Prints a line per action and a table of checks; exit 0 only when every check passed,
 * 1 otherwise, 2 for a wrong flag, 130/143 when interrupted.
 */
import { UsageError } from '../cli/errors.js';
import { parseChaosArgs, type ChaosOptions } from './chaos/options.js';
import { runChaos } from './chaos/run.js';

async function main(): Promise<void> {
  let opts: ChaosOptions | 'help';
  try {
    opts = parseChaosArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`chaos: ${err.message} (see --help)\n`);
    process.exit(2);
  }
  if (opts === 'help') process.exit(0);
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (name: NodeJS.Signals) => {
    if (++signals > 1) process.exit(name === 'SIGTERM' ? 143 : 130);
    controller.abort(name);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const result = await runChaos(opts, {
    out: (line) => void process.stdout.write(`${line}\n`),
    note: (line) => void process.stderr.write(`${line}\n`),
    signal: controller.signal,
  });
  // kafkajs and the pools may leave timers behind: the result is decided, so leave now
  process.exit(result.exitCode);
}

void main();
