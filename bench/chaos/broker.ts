/**
 * The chaos run's own Kafka broker: the project's local broker (infra/kafka.ts) in a home of its own,
 * `.local/kafka-chaos`, on its own port, started with fresh data and wiped at the end.
 *
 * Why not the shared broker (the test run's, or the one `weir` commands use)? Restarting it would be safe only if
 * nothing else used it meanwhile. Within one vitest run the test files do run one at a time, but the shared broker
 * is also the one every other `weir` command, benchmark and test run on this machine uses — a restart in the middle
 * of theirs, or the chaos run's reset of the catalog topics (`trades`, `positions`, …), would break them; and a test
 * run given KAFKA_BROKERS may point at a broker that cannot be restarted from here at all. A second broker costs one
 * JVM and a few seconds to start; its restart touches nobody else. The schema registry stays the shared one (it
 * keeps its schemas in Postgres, not in Kafka).
 */
import path from 'node:path';
import { ensureKafka, kafkaLeaseHolders, kafkaStatus, resetKafka, stopKafka, type KafkaHandle } from '../../infra/kafka.js';
import { REPO_ROOT } from '../../infra/local-service.js';

export const CHAOS_KAFKA_HOME = path.join(REPO_ROOT, '.local', 'kafka-chaos');

export class ChaosBroker {
  private handle: KafkaHandle | null = null;
  readonly brokers: string;

  constructor(
    private readonly port: number,
    private readonly log: (line: string) => void,
  ) {
    this.brokers = `127.0.0.1:${port}`;
  }

  /**
   * Fresh data, then start. Refuses when another chaos run is using the chaos home; a broker left running by a
   * chaos run that was killed (its lease holder is gone) is stopped and wiped like any old data.
   */
  async start(): Promise<void> {
    const running = await kafkaStatus(this.port, CHAOS_KAFKA_HOME);
    const holders = kafkaLeaseHolders(CHAOS_KAFKA_HOME);
    if (running.running && holders.length > 0) {
      throw new Error(
        `a chaos broker already runs (pid ${running.pid}, home ${path.relative(process.cwd(), CHAOS_KAFKA_HOME)}) for the chaos run of pid ${holders.join(', ')}; wait for it to end, or end it`,
      );
    }
    await resetKafka(CHAOS_KAFKA_HOME);
    this.handle = await ensureKafka({ home: CHAOS_KAFKA_HOME, port: this.port, log: this.log });
  }

  /** Stop (SIGTERM: a clean shutdown), stay down `downMs`, start again on the same port with the same data. */
  async restart(downMs: number): Promise<void> {
    await stopKafka(CHAOS_KAFKA_HOME);
    await new Promise((r) => setTimeout(r, downMs));
    // the old lease goes with the old process (stopping removed its autostop marker, so this stops nothing)
    await this.handle?.release();
    this.handle = await ensureKafka({ home: CHAOS_KAFKA_HOME, port: this.port, log: this.log });
  }

  /**
   * Stop it and delete its data (topics, groups, transactions), so nothing of the run stays in Kafka; with
   * `keepData` the data stays on disk (for a look after a failure: `ensureKafka({ home: CHAOS_KAFKA_HOME, port })`
   * serves it again) until the next chaos run starts afresh.
   */
  async remove(keepData = false): Promise<void> {
    if (keepData) await stopKafka(CHAOS_KAFKA_HOME);
    else await resetKafka(CHAOS_KAFKA_HOME);
    await this.handle?.release();
    this.handle = null;
  }
}
