/**
 * The services the main job runs against, resolved from the settings.
 * Responsible for:
 * - Kafka and the schema registry: the configured ones (KAFKA_BROKERS, SCHEMA_REGISTRY_URL), or the project's local
 *   ones, started (or reused) through infra/ and released at the end (a service this run started is stopped
 *   unless another process still uses it);
 * - the Postgres connection of DATABASE_URL and the Redis connection of REDIS_URL, as the sinks take them;
 * - stopping to wait for a service that is still starting when the run is interrupted.
 */
import { Kafka, logLevel } from 'kafkajs';
import type { RedisOptions } from 'ioredis';
import { SchemaRegistryClient } from '../../schemas/registry-client.js';
import { kafkaSecurity, maskUrl, pgConnection, redisOptions, type PgConnection, type Settings } from '../settings.js';
import { registryApi, registryAuth } from '../services.js';

export interface DemoEnvironment {
  settings: Settings;
  brokers: string[];
  /** as configured or started, without the API path (children get it as SCHEMA_REGISTRY_URL) */
  registryUrl: string;
  registry: SchemaRegistryClient;
  kafka: Kafka;
  pg: PgConnection;
  redis: RedisOptions;
  /** what to print for the services, passwords masked */
  describe: { kafka: string; registry: string; postgres: string; redis: string };
  /** Drop this run's leases on the local services (stopping what it started, unless others use it). */
  release(): Promise<void>;
}

type Log = (line: string) => void;

/** Thrown when the run was interrupted (SIGINT/SIGTERM); `signal` names the signal. */
export class DemoInterrupted extends Error {
  constructor(readonly signal: string) {
    super(`interrupted by ${signal}`);
  }
}

export function checkInterrupted(signal: AbortSignal): void {
  if (signal.aborted) throw new DemoInterrupted(String(signal.reason ?? 'SIGINT'));
}

/** `promise`, unless `signal` fires first (then DemoInterrupted; the promise goes on unobserved). */
export function unlessInterrupted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  checkInterrupted(signal);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      promise.catch(() => undefined);
      reject(new DemoInterrupted(String(signal.reason ?? 'SIGINT')));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

export async function prepareEnvironment(settings: Settings, log: Log, signal: AbortSignal): Promise<DemoEnvironment> {
  const releases: Array<() => Promise<void>> = [];
  const release = async () => {
    for (const r of releases.splice(0).reverse()) await r().catch((err: Error) => log(`releasing a local service failed: ${err.message}`));
  };
  try {
    // A service still starting when the run is interrupted is released as soon as it is up.
    const late = (h: { release(): Promise<void> }) => void h.release().catch(() => undefined);
    const [kafkaHandle, registryHandle] = await unlessInterrupted(
      Promise.all([
        (async () => {
          if (!settings.KAFKA_BROKERS) log('KAFKA_BROKERS is not set: using the project’s local Kafka broker (starting it if needed)');
          const { ensureKafka } = await import('../../infra/kafka.js');
          const h = settings.KAFKA_BROKERS
            ? { brokers: settings.KAFKA_BROKERS.join(','), release: async () => undefined }
            : await ensureKafka({ log });
          if (signal.aborted) late(h);
          else releases.push(() => h.release());
          return h;
        })(),
        (async () => {
          if (!settings.SCHEMA_REGISTRY_URL) log('SCHEMA_REGISTRY_URL is not set: using the project’s local schema registry (starting it if needed)');
          const { ensureRegistry } = await import('../../infra/registry.js');
          const h = settings.SCHEMA_REGISTRY_URL
            ? { url: settings.SCHEMA_REGISTRY_URL.replace(/\/+$/, ''), release: async () => undefined }
            : await ensureRegistry({ log });
          if (signal.aborted) late(h);
          else releases.push(() => h.release());
          return h;
        })(),
      ]),
      signal,
    );
    const brokers = kafkaHandle.brokers.split(',');
    const kafka = new Kafka({
      clientId: 'weir-demo',
      brokers,
      ...kafkaSecurity(settings),
      connectionTimeout: 3000,
      requestTimeout: 30000,
      retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 3000 },
      logLevel: logLevel.NOTHING,
    });
    const registry = new SchemaRegistryClient({ url: registryApi(registryHandle.url), auth: registryAuth(settings) });
    const pg = pgConnection(settings.DATABASE_URL);
    const redis = redisOptions(settings.REDIS_URL);
    return {
      settings,
      brokers,
      registryUrl: registryHandle.url,
      registry,
      kafka,
      pg,
      redis,
      describe: {
        kafka: brokers.join(','),
        registry: registryHandle.url,
        postgres: maskUrl(settings.DATABASE_URL),
        redis: maskUrl(settings.REDIS_URL),
      },
      release,
    };
  } catch (err) {
    await release();
    throw err;
  }
}
