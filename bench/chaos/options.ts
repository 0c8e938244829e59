/**
 * The chaos suite's command line (commander): the two profiles and the flags that adjust them.
 * - `--short`: the CI version: a small stream and 3 rounds, within about 3 minutes on a 2-core machine;
 * - the default: the long version, run on demand: a bigger stream and more rounds.
 * A wrong flag is one sentence on stderr and exit 2.
 */
import { Command, CommanderError } from 'commander';
import { nonNegativeInt, positiveInt, ratio } from '../../cli/common.js';
import { UsageError } from '../../cli/errors.js';

export interface ChaosOptions {
  profile: 'short' | 'long';
  /** records per application (events, duplicates, malformed) */
  count: number;
  rounds: number;
  /** seconds between the starts of two rounds (the load goes on meanwhile) */
  roundSeconds: number;
  workers: number;
  seed: number;
  duplicates: number;
  malformed: number;
  /** how long the broker stays down when it is restarted */
  brokerDownSeconds: number;
  /** port of the suite's own Kafka broker (its controller listens one above) */
  kafkaPort: number;
  /** keep the Postgres schema, Redis keys, logs and state at the end */
  keep: boolean;
}

const PROFILES = {
  short: { count: 900, rounds: 3, roundSeconds: 22 },
  long: { count: 15_000, rounds: 10, roundSeconds: 45 },
} as const;

/** 100 above the shared local broker's port (WEIR_LOCAL_KAFKA_PORT, default 19092) */
export const defaultKafkaPort = (env: NodeJS.ProcessEnv): number => (Number(env.WEIR_LOCAL_KAFKA_PORT) || 19092) + 100;

/** The options, 'help' when help was printed, or a UsageError naming the bad flag. */
export function parseChaosArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ChaosOptions | 'help' {
  const program = new Command('npm run chaos --')
    .description(
      'Chaos suite: runs routing, trades and payments with several worker processes each and their sink processes on a Kafka broker of its own, ' +
        'under steady load; each round SIGKILLs a worker or a sink and restarts it and cuts sink connections to Postgres and Redis; one round ' +
        'restarts the broker; a share of the records is malformed. At the end every table and key is compared with a recomputation from the ' +
        'input, and each dead-letter topic with the malformed records sent. Exit 0 only when every check passes.',
    )
    .option('--short', `the CI version: ${PROFILES.short.count} records per application, ${PROFILES.short.rounds} rounds`)
    .option('--count <n>', `records per application (default ${PROFILES.long.count}; --short ${PROFILES.short.count})`)
    .option('--rounds <n>', `fault rounds, at least 2 (default ${PROFILES.long.rounds}; --short ${PROFILES.short.rounds})`)
    .option('--round-seconds <s>', `seconds from one round to the next (default ${PROFILES.long.roundSeconds}; --short ${PROFILES.short.roundSeconds})`)
    .option('--workers <n>', 'worker processes per application', '3')
    .option('--seed <n>', 'seed of the stream and of the choice of victims', '42')
    .option('--duplicates <ratio>', 'share of re-sent events', '0.05')
    .option('--malformed <ratio>', 'share of malformed records (not Avro, truncated, or failing validation)', '0.03')
    .option('--broker-down <s>', 'seconds the broker stays down in its restart', '5')
    .option('--kafka-port <port>', `port of the suite's own broker (WEIR_CHAOS_KAFKA_PORT; default ${defaultKafkaPort(env)}: the local broker's + 100; controller one above)`)
    .option('--keep', 'keep the Postgres schema, the Redis keys, logs and state at the end (they are removed otherwise)')
    .addHelpText(
      'after',
      `
Environment: SCHEMA_REGISTRY_URL (unset: the project's local registry), DATABASE_URL, REDIS_URL, WEIR_PG_SCHEMA
(default weir_chaos), WEIR_REDIS_PREFIX (default weir-chaos), WEIR_APP_PREFIX (default chaos-), WEIR_PARTITIONS.
KAFKA_BROKERS is not used: the suite starts a broker of its own under .local/kafka-chaos (restarting a shared one
would break whoever else uses it) and removes its data at the end.

Examples:
  $ npm run chaos -- --short
  $ npm run chaos -- --rounds 20 --seed 7`,
    )
    .exitOverride()
    .configureOutput({ writeErr: () => undefined });
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError && (err.code === 'commander.helpDisplayed' || err.code === 'commander.help')) return 'help';
    if (err instanceof CommanderError) throw new UsageError(err.message.replace(/^error: /, ''));
    throw err;
  }
  const o = program.opts<Record<string, string | boolean | undefined>>();
  const text = (k: string) => o[k] as string | undefined;
  const profile = o.short ? 'short' : 'long';
  const base = PROFILES[profile];
  const rounds = text('rounds') === undefined ? base.rounds : positiveInt('--rounds', text('rounds')!);
  if (rounds < 2) throw new UsageError(`--rounds takes at least 2 (one of them restarts the broker), not '${text('rounds')}'`);
  const portText = text('kafkaPort') ?? env.WEIR_CHAOS_KAFKA_PORT;
  const kafkaPort = portText === undefined ? defaultKafkaPort(env) : positiveInt(text('kafkaPort') ? '--kafka-port' : 'WEIR_CHAOS_KAFKA_PORT', portText);
  if (kafkaPort > 65534) throw new UsageError(`--kafka-port takes a port up to 65534 (the controller listens one above), not '${portText}'`);
  return {
    profile,
    count: text('count') === undefined ? base.count : positiveInt('--count', text('count')!),
    rounds,
    roundSeconds: text('roundSeconds') === undefined ? base.roundSeconds : positiveInt('--round-seconds', text('roundSeconds')!),
    workers: positiveInt('--workers', text('workers')!),
    seed: nonNegativeInt('--seed', text('seed')!),
    duplicates: ratio('--duplicates', text('duplicates')!),
    malformed: ratio('--malformed', text('malformed')!),
    brokerDownSeconds: nonNegativeInt('--broker-down', text('brokerDown')!),
    kafkaPort,
    keep: o.keep === true,
  };
}
