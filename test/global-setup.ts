/**
 * Vitest globalSetup: one Kafka broker per test run.
 *
 * - KAFKA_BROKERS set: used as is, nothing is started or stopped.
 * - Otherwise the project's local broker (infra/kafka.ts) is started, or reused if it
 *   is already running. At the end the broker is stopped if it was started by a test run
 *   (this one, or an earlier/concurrent one) and no other live run still uses it; a broker
 *   started with `tsx infra/kafka.ts start` is left running.
 *
 * Tests read the address with `inject('kafkaBrokers')`; subprocesses spawned by tests
 * get it through the inherited KAFKA_BROKERS environment variable.
 */
import type { TestProject } from 'vitest/node';
import { ensureKafka } from '../infra/kafka.js';
import { ensureRegistry } from '../infra/registry.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Comma-separated Kafka bootstrap servers, e.g. "127.0.0.1:19092". */
    kafkaBrokers: string;
    /** Base URL of the schema registry (Apicurio; Confluent-compatible API under /apis/ccompat/v7). */
    schemaRegistryUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const log = (msg: string) => process.stderr.write(`${msg}\n`);
  const [kafka, registry] = await Promise.all([ensureKafka({ log }), ensureRegistry({ log })]);
  process.env.KAFKA_BROKERS = kafka.brokers;
  project.provide('kafkaBrokers', kafka.brokers);
  project.provide('schemaRegistryUrl', registry.url);

  return async () => {
    // each stops its server if a test run started it and no other run still uses it
    await Promise.all([kafka.release(), registry.release()]);
  };
}
