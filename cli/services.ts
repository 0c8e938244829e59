/**
 * The services a command talks to, resolved once from the settings.
 * Responsible for:
 * - Kafka and the schema registry: the configured ones (KAFKA_BROKERS, SCHEMA_REGISTRY_URL), or else the project's
 *   local ones, started (or reused) through infra/ and left running for the next command;
 * - connecting with a bounded wait, so an unreachable broker is one sentence after WEIR_CONNECT_TIMEOUT_MS, never a
 *   kafkajs retry log or a hang;
 * - the application id of a topology (WEIR_APP_PREFIX + the catalog's id, or an explicit `--app-id`).
 */
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { BrokerUnreachableError, ConfigError } from '../runtime/errors.js';
import { SchemaRegistryClient } from '../schemas/registry-client.js';
import type { Application } from '../topologies/index.js';
import { kafkaSecurity, type Settings } from './settings.js';

export interface Services {
  settings: Settings;
  brokers: string[];
  /** The registry URL as configured or started (children get it as SCHEMA_REGISTRY_URL). */
  registryUrl: string;
  kafka: Kafka;
  registry: SchemaRegistryClient;
  /** An admin client, connected within WEIR_CONNECT_TIMEOUT_MS (else BrokerUnreachableError). Disconnect it. */
  admin(): Promise<Admin>;
  /** The environment a child process needs to reach the same services. */
  childEnv(): Record<string, string>;
}

type Log = (line: string) => void;

/** Kafka and the registry as the settings say; `need` limits what is resolved (starting nothing else). */
export async function resolveServices(settings: Settings, log: Log, need: { kafka?: boolean; registry?: boolean } = { kafka: true, registry: true }): Promise<Services> {
  const [brokers, registryUrl] = await Promise.all([
    need.kafka === false ? Promise.resolve(settings.KAFKA_BROKERS ?? []) : brokersOf(settings, log),
    need.registry === false ? Promise.resolve(settings.SCHEMA_REGISTRY_URL ?? '') : registryUrlOf(settings, log),
  ]);
  const kafka = new Kafka({
    clientId: 'weir-cli',
    brokers: brokers.length > 0 ? brokers : ['127.0.0.1:0'],
    ...kafkaSecurity(settings),
    connectionTimeout: 3000,
    requestTimeout: 30000,
    retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 3000 },
    logLevel: logLevel.NOTHING,
  });
  let registry: SchemaRegistryClient | undefined;
  return {
    settings,
    brokers,
    registryUrl,
    kafka,
    get registry() {
      registry ??= new SchemaRegistryClient({ url: registryApi(registryUrl), auth: registryAuth(settings) });
      return registry;
    },
    admin: () => connectAdmin(kafka, brokers, settings.WEIR_CONNECT_TIMEOUT_MS),
    childEnv: () => ({
      ...(brokers.length > 0 ? { KAFKA_BROKERS: brokers.join(',') } : {}),
      ...(registryUrl ? { SCHEMA_REGISTRY_URL: registryUrl } : {}),
    }),
  };
}

async function brokersOf(settings: Settings, log: Log): Promise<string[]> {
  if (settings.KAFKA_BROKERS) return settings.KAFKA_BROKERS;
  log('KAFKA_BROKERS is not set: using the project’s local Kafka broker (starting it if needed)');
  const { ensureKafka } = await import('../infra/kafka.js');
  // No release(): the broker stays up for the next command (a test run that finds no live user stops it).
  const handle = await ensureKafka({ log });
  return handle.brokers.split(',');
}

async function registryUrlOf(settings: Settings, log: Log): Promise<string> {
  if (settings.SCHEMA_REGISTRY_URL) return settings.SCHEMA_REGISTRY_URL;
  log('SCHEMA_REGISTRY_URL is not set: using the project’s local schema registry (starting it if needed)');
  const { ensureRegistry } = await import('../infra/registry.js');
  const handle = await ensureRegistry({ log });
  return handle.url;
}

/**
 * The Confluent-compatible API of a registry URL: a bare host (the project's Apicurio registry) gets Apicurio's
 * `/apis/ccompat/v7`; a URL with a path is taken as the API itself (e.g. `https://host/apis/ccompat/v7`).
 */
export function registryApi(url: string): string {
  const u = new URL(url);
  if (u.pathname === '/' || u.pathname === '') return `${url.replace(/\/+$/, '')}/apis/ccompat/v7`;
  return url.replace(/\/+$/, '');
}

export function registryAuth(s: Settings): { username: string; password: string } | undefined {
  return s.SCHEMA_REGISTRY_USERNAME && s.SCHEMA_REGISTRY_PASSWORD ? { username: s.SCHEMA_REGISTRY_USERNAME, password: s.SCHEMA_REGISTRY_PASSWORD } : undefined;
}

/** Connect an admin client and make one request, within `timeoutMs`. */
export async function connectAdmin(kafka: Kafka, brokers: string[], timeoutMs: number): Promise<Admin> {
  if (brokers.length === 0) throw new ConfigError('KAFKA_BROKERS is empty; give host:port of at least one Kafka broker');
  const admin = kafka.admin();
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BrokerUnreachableError(brokers.join(','), Date.now() - started)), timeoutMs);
  });
  try {
    await Promise.race([
      (async () => {
        await admin.connect();
        await admin.describeCluster();
      })(),
      timeout,
    ]);
    return admin;
  } catch (err) {
    await admin.disconnect().catch(() => undefined);
    if (err instanceof BrokerUnreachableError) throw err;
    throw new BrokerUnreachableError(brokers.join(','), Date.now() - started, err);
  } finally {
    clearTimeout(timer);
  }
}

/** The application id of a topology: `--app-id`, else WEIR_APP_PREFIX + the catalog's id. */
export function applicationIdOf(app: Application, settings: Settings, override?: string): string {
  const id = override ?? `${settings.WEIR_APP_PREFIX}${app.applicationId}`;
  if (!/^[A-Za-z0-9._-]+$/.test(id)) throw new ConfigError(`application id '${id}' may use only letters, digits, '.', '_' and '-'`);
  return id;
}
