/**
 * The `weir` command: produce events, run the schema gate, deploy, replay, stop and inspect the three applications.
 * Responsible for:
 * - the command line (commander): every command's options, help and examples;
 * - one sentence on stderr and a non-zero exit for anything that goes wrong: 2 for wrong usage, 1 for a failure
 *   (an unreachable service, a refused schema or replay, bad input); WEIR_DEBUG=1 shows the stack;
 * - loading a command's code only when it runs, so `--help` is quick.
 * Settings come from the environment (cli/settings.ts); results go to stdout, progress and notes to stderr.
 */
import fs from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { describeError, exitCodeOf, EXIT } from './errors.js';

const ENVIRONMENT = `
Settings (environment):
  KAFKA_BROKERS          host:port[,host:port…]; unset: the project's local broker (started if needed)
  SCHEMA_REGISTRY_URL    schema registry (Apicurio base URL, or a Confluent API URL with its path);
                         unset: the project's local registry (started if needed)
  KAFKA_SSL, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD,
  SCHEMA_REGISTRY_USERNAME, SCHEMA_REGISTRY_PASSWORD
  WEIR_PARTITIONS        partitions of the topics weir creates (default 6)
  WEIR_STATE_DIR         local state of the workers (default .local/state)
  WEIR_RUN_DIR           run files and logs of deployed processes (default .local/run)
  WEIR_HTTP_HOST, WEIR_HTTP_PORT   health and metrics servers (default 127.0.0.1, port 0 = any free port)
  WEIR_GUARANTEE, WEIR_COMMIT_INTERVAL_MS, WEIR_LOG_LEVEL, WEIR_CONNECT_TIMEOUT_MS (default 10000)
  WEIR_APP_PREFIX        prefix of every application id (isolates test runs sharing a broker)
  WEIR_DEBUG=1           show the stack of an error`;

function version(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

const examples = (lines: string[]) => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;
const appIdOption = () => new Option('--app-id <id>', 'application id instead of WEIR_APP_PREFIX + the catalog id').hideHelp();

/** What the process should do once the command's action returned. */
let keepAlive = false;

export function buildProgram(): Command {
  const program = new Command('weir')
    .description('Kafka-Streams-style stream processing: produce, register schemas, deploy, replay and inspect the weir applications (routing, trades, payments).')
    .version(version(), '-V, --version')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      outputError: (str, write) => write(`weir: ${str.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').trim()}\n`),
    })
    .addHelpText('after', `${ENVIRONMENT}\n${examples(['weir produce --generate trades --count 10000', 'weir deploy trades --instances 2', 'weir status trades', 'weir replay trades --to-earliest --dry-run'])}`);

  program
    .command('produce')
    .summary('produce records to a topic (NDJSON from a file or stdin, or a generated scenario)')
    .description(
      `Produce records to one of the catalog's topics, Avro-encoded through the schema registry, keyed as the catalog says (tenantId, accountId, paymentId) and partitioned by murmur2 of the key. Missing topics are created (WEIR_PARTITIONS) and the topics' schemas registered through the compatibility gate first.

NDJSON (--file, or stdin): one record per line, either the value itself or {"key": …, "value": {…}, "timestamp": …}. Decimals are strings such as "101.25", converted exactly to the field's scale (more places than the scale is an error); times are epoch milliseconds or ISO-8601 strings. The record timestamp is the envelope's, else eventTime.

--generate <scenario> produces a seeded, realistic stream to ALL the scenario's input topics, in arrival order (see below). Give a topic as well (weir produce agent-events --generate routing) to produce only that topic's records. --count is the number of records in all, duplicates and malformed records included; event times are shifted to end about now. Ctrl-C stops after the records sent so far.`,
    )
    .argument('[topic]', 'the topic (required with --file or stdin; optional with --generate)')
    .option('--file <path>', "NDJSON file to produce ('-' or none: stdin)")
    .option('--generate <scenario>', 'generate a scenario: routing, trades or payments')
    .option('--count <n>', 'records to produce (--generate: default 1000; --file: at most this many)')
    .option('--rate <n>', 'records per second (default: as fast as the broker takes them)')
    .option('--duplicates <ratio>', 'with --generate: share of re-sent events, same eventId (default 0.05)')
    .option('--malformed <ratio>', 'with --generate: share of records that fail decoding or validation, which the workers dead-letter (default 0)')
    .option('--seed <n>', 'with --generate: seed of the stream (default: random, printed at the end)')
    .addHelpText(
      'after',
      `
Scenarios (--generate):
  trades     → trades                              many accounts and instruments, skewed; NEW, AMEND and CANCEL;
                                                   history edits (amends of old trades); late bookings
  routing    → agent-events + conversation-events  many tenants, agents and skills; logins, logouts, status and
                                                   capacity changes; requests and ends; the topics out of order
  payments   → payments + settlements              matched, mismatched, early, late, missing and unexpected
                                                   settlements; payments held back behind their settlements
` +
      examples([
        'weir produce --generate trades --count 50000 --rate 2000',
        'weir produce --generate routing --count 10000 --duplicates 0.05 --malformed 0.01',
        'weir produce trades --file trades.ndjson',
        `echo '{"eventId":"e1","accountId":"ACC-1","tradeId":"T1","type":"NEW","version":1,"instrument":"AAPL","side":"BUY","quantity":"10","price":"101.25","currency":"USD","tradeTime":"2025-01-06T09:00:00Z","eventTime":"2025-01-06T09:00:01Z"}' | weir produce trades`,
      ]),
    )
    .action(async (topic: string | undefined, flags) => (await import('./commands/produce.js')).produceCommand(topic, flags));

  const schemas = program
    .command('schemas')
    .summary('the schema gate: register, check or list the catalog subjects')
    .description(
      `The compatibility gate over the catalog's subjects (<topic>-value). "register" checks every subject against its compatibility level and registers all of them or none; "check" is the same as a dry run; "list" shows the subjects with their versions and ids. An incompatible schema ends the command with one sentence naming subject and field (exit code 1).`,
    )
    .addHelpText('after', examples(['weir schemas check', 'weir schemas register --topology trades', 'weir schemas check --schema trades=./trade-event-v2.avsc', 'weir schemas list --json']));
  const scope = (c: Command) =>
    c
      .option('--topology <name>', 'only the topics of this application (routing, trades, payments)')
      .option('--schema <topic=file>', 'use this .avsc file for the topic instead of the catalog schema (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
      .option('--json', 'print JSON');
  scope(schemas.command('register').description('check, then register every catalog schema (all or none)'))
    .addHelpText('after', examples(['weir schemas register', 'weir schemas register --topology payments']))
    .action(async (flags) => (await import('./commands/schemas.js')).schemasRegister(flags));
  scope(schemas.command('check').description('dry run of register: which subjects would change, and whether they may'))
    .addHelpText('after', examples(['weir schemas check', 'weir schemas check --schema trades=./trade-event-v2.avsc']))
    .action(async (flags) => (await import('./commands/schemas.js')).schemasCheck(flags));
  schemas
    .command('list')
    .description('the subjects with their versions and schema ids')
    .option('--topology <name>', 'only the subjects of this application')
    .option('--all', "every subject in the registry, not only the catalog's")
    .option('--json', 'print JSON')
    .addHelpText('after', examples(['weir schemas list', 'weir schemas list --all --json']))
    .action(async (flags) => (await import('./commands/schemas.js')).schemasList(flags));

  program
    .command('deploy')
    .summary('create topics, register schemas, start workers and supervise them')
    .description(
      `Deploy a topology on this machine: validate it, create or check its topics (WEIR_PARTITIONS partitions, co-partitioned inputs equal, positions compacted), register its schemas, start --instances worker processes and wait until every one reports ready (/health/readiness). Then it stays in the foreground: a worker that dies is reported, and Ctrl-C or SIGTERM stops all of them cleanly (each commits and leaves the group) and exits 0. With --detach it returns once they are ready and leaves them running; stop them with "weir stop <topology>". Worker logs: WEIR_RUN_DIR/<application id>/worker-<n>.log; "weir status" shows their health.`,
    )
    .argument('<topology>', 'routing, trades or payments')
    .option('--instances <n>', 'worker processes to start', '1')
    .option('--detach', 'return once ready and leave the workers running in the background')
    .option('--ready-timeout <seconds>', 'how long to wait for every worker to be ready', '180')
    .addOption(appIdOption())
    .addHelpText('after', examples(['weir deploy trades', 'weir deploy routing --instances 3', 'weir deploy payments --detach && weir status payments']))
    .action(async (topology: string, flags) => (await import('./commands/deploy.js')).deployCommand(topology, flags));

  program
    .command('replay')
    .summary('rebuild state and re-emit outputs from an offset or a timestamp')
    .description(
      `Replay a stopped topology from a point in its input: its state at that point is rebuilt from the retained input (without output), the group's offsets are moved there, and the next deploy re-emits the outputs from there on. Refused, with one sentence and exit code 1, while workers are running or when retention no longer reaches back. The plan is always printed first; --dry-run stops after it.`,
    )
    .argument('<topology>', 'routing, trades or payments')
    .option('--to-offset <offsets>', 'partition:offset[,partition:offset…], or topic:partition:offset[,…] (every input partition)')
    .option('--to-timestamp <time>', 'the first offset at or after this time in each partition (epoch ms or ISO-8601)')
    .option('--to-earliest', 'from the start of the input')
    .option('--dry-run', 'print the plan and change nothing')
    .addOption(appIdOption())
    .addHelpText(
      'after',
      examples([
        'weir replay trades --to-earliest --dry-run',
        'weir replay trades --to-timestamp 2025-01-06T09:00:00Z',
        'weir replay trades --to-offset 0:120,1:98,2:0,3:77,4:5,5:61',
        'weir replay routing --to-offset agent-events:0:10,conversation-events:0:12,…',
      ]),
    )
    .action(async (topology: string, flags) => (await import('./commands/replay.js')).replayCommand(topology, flags));

  program
    .command('status')
    .summary('group members, tasks, lag, dead letters and worker health')
    .description(
      `Per application: the consumer group and its members with their tasks and partitions, the lag of every input partition (committed offset against the end), the dead letters, and the health of every process deployed on this machine (tasks and their states, restore progress). Without a topology: all three applications.`,
    )
    .argument('[topology]', 'routing, trades or payments (default: all)')
    .option('--json', 'print JSON')
    .addOption(appIdOption())
    .addHelpText('after', examples(['weir status', 'weir status trades --json']))
    .action(async (topology: string | undefined, flags) => (await import('./commands/status.js')).statusCommand(topology, flags));

  program
    .command('stop')
    .summary('stop the processes of a topology running on this machine')
    .description('Stop the processes of a topology that run on this machine (found by their run files): a foreground deploy is sent SIGTERM and stops its workers itself; detached workers get SIGTERM directly. Each commits and leaves the group; whatever still runs after --timeout is killed (SIGKILL).')
    .argument('<topology>', 'routing, trades or payments')
    .option('--timeout <seconds>', 'grace period before SIGKILL', '30')
    .addOption(appIdOption())
    .addHelpText('after', examples(['weir stop trades']))
    .action(async (topology: string, flags) => (await import('./commands/stop.js')).stopCommand(topology, flags));

  program
    .command('worker', { hidden: true })
    .description('one worker process of a topology (started by weir deploy)')
    .argument('<topology>', 'routing, trades or payments')
    .option('--instance <n>', 'index of this worker (state under WEIR_STATE_DIR/<n>, port WEIR_HTTP_PORT + n)', '0')
    .option('--supervised', 'stop when the deploy that started it is gone')
    .option('--log <file>', 'the log file its deploy writes its output to (recorded in the run file)')
    .addOption(appIdOption())
    .action(async (topology: string, flags) => {
      keepAlive = true;
      await (await import('./commands/worker.js')).workerCommand(topology, flags);
    });

  program
    .command('sink', { hidden: true })
    .description('one sink process of a topology: its outputs into Postgres or Redis (started by weir deploy)')
    .argument('<topology>', 'routing, trades or payments')
    .requiredOption('--kind <kind>', 'postgres or redis')
    .option('--instance <n>', 'index of this sink (port WEIR_HTTP_PORT + 100 + n)', '0')
    .option('--supervised', 'stop when the deploy that started it is gone')
    .option('--log <file>', 'the log file its deploy writes its output to (recorded in the run file)')
    .addOption(appIdOption())
    .action(async (topology: string, flags) => {
      keepAlive = true;
      await (await import('./commands/sink.js')).sinkCommand(topology, flags);
    });

  return program;
}

/** Runs the command line; resolves with the exit code, or undefined when the process must stay up (a worker). */
export async function main(argv: string[]): Promise<number | undefined> {
  const debug = /^(1|true|yes)$/i.test(process.env.WEIR_DEBUG ?? '');
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
    if (keepAlive) return undefined;
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.ok;
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    process.stderr.write(`weir: ${describeError(err, debug)}\n`);
    return exitCodeOf(err);
  }
}

/** The entry point of bin/weir.mjs. */
export async function run(argv: string[]): Promise<void> {
  const debug = /^(1|true|yes)$/i.test(process.env.WEIR_DEBUG ?? '');
  process.on('unhandledRejection', (err) => {
    process.stderr.write(`weir: ${describeError(err, debug)}\n`);
    process.exit(EXIT.failed);
  });
  const code = await main(argv);
  if (code !== undefined) process.exit(code);
}
