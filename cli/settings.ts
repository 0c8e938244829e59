import { z } from 'zod';
import type { KafkaConfig, SASLOptions } from 'kafkajs';
import type { RedisOptions } from 'ioredis';
import { ConfigError } from '../runtime/errors.js';

/**
 * Every setting of the weir command and its processes, read from the environment and validated at start.
 * Responsible for:
 * - one message that names the bad setting and says what it takes;
 * - keeping secrets (passwords) out of anything printed: `describeSettings` masks them.
 */
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const hostPortList = z
  .string()
  .transform((s) => s.split(',').map((b) => b.trim()).filter(Boolean))
  .refine((list) => list.length > 0 && list.every((b) => /^[^:\s]+:\d+$/.test(b)), 'a comma-separated list of host:port');
const url = z.string().url('a URL such as http://127.0.0.1:18081');
const positiveInt = z.coerce.number().int().positive();

const schema = z.object({
  KAFKA_BROKERS: hostPortList.optional(),
  KAFKA_SSL: bool.default(false),
  KAFKA_SASL_MECHANISM: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']).optional(),
  KAFKA_SASL_USERNAME: z.string().min(1).optional(),
  KAFKA_SASL_PASSWORD: z.string().min(1).optional(),
  SCHEMA_REGISTRY_URL: url.optional(),
  SCHEMA_REGISTRY_USERNAME: z.string().min(1).optional(),
  SCHEMA_REGISTRY_PASSWORD: z.string().min(1).optional(),
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'a postgres:// URL').default('postgres://postgres@127.0.0.1:5432/weir'),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'a redis:// URL').default('redis://127.0.0.1:6379/0'),
  /** Postgres schema of the sink tables (created and migrated by the sinks). */
  WEIR_PG_SCHEMA: z.string().regex(/^[a-z_][a-z0-9_]*$/, 'a lower-case SQL identifier such as weir').default('weir'),
  /** Prefix of every Redis key the sinks write. */
  WEIR_REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9._-]+$/, "letters, digits, '.', '_' and '-'").default('weir'),
  WEIR_STATE_DIR: z.string().min(1).default('.local/state'),
  WEIR_HTTP_HOST: z.string().min(1).default('127.0.0.1'),
  WEIR_HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  WEIR_GUARANTEE: z.enum(['exactly_once', 'at_least_once']).default('exactly_once'),
  WEIR_COMMIT_INTERVAL_MS: positiveInt.default(100),
  WEIR_PARTITIONS: positiveInt.default(6),
  WEIR_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Where workers started by `weir deploy` leave their run files (`<dir>/<applicationId>/<pid>.json`) and logs. */
  WEIR_RUN_DIR: z.string().min(1).default('.local/run'),
  /** Prepended to every application id (consumer group, transactional ids, changelogs): isolates test runs. */
  WEIR_APP_PREFIX: z.string().regex(/^[A-Za-z0-9._-]*$/, "only letters, digits, '.', '_' and '-'").default(''),
  /** How long a command tries to reach Kafka before it gives up. */
  WEIR_CONNECT_TIMEOUT_MS: positiveInt.default(10_000),
});

export type Settings = z.infer<typeof schema>;

const SECRET = /PASSWORD|SECRET|TOKEN/;
const SECRET_IN_URL = /(\/\/[^:/@]*:)([^@]*)(@)/;

export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const picked: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const v = env[key];
    if (v !== undefined && v !== '') picked[key] = v;
  }
  const parsed = schema.safeParse(picked);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0]);
    const shown = SECRET.test(name) ? '(hidden)' : JSON.stringify(picked[name]);
    throw new ConfigError(`setting ${name}=${shown} is not valid: ${issue.message}`);
  }
  const s = parsed.data;
  if (s.KAFKA_SASL_MECHANISM && (!s.KAFKA_SASL_USERNAME || !s.KAFKA_SASL_PASSWORD)) {
    throw new ConfigError('KAFKA_SASL_MECHANISM needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD');
  }
  if ((s.SCHEMA_REGISTRY_USERNAME === undefined) !== (s.SCHEMA_REGISTRY_PASSWORD === undefined)) {
    throw new ConfigError('SCHEMA_REGISTRY_USERNAME and SCHEMA_REGISTRY_PASSWORD go together');
  }
  return s;
}

/** The settings as `KEY=value` lines, secrets masked (also a password inside a URL). */
export function describeSettings(s: Settings): string[] {
  return Object.entries(s)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => {
      const text = Array.isArray(v) ? v.join(',') : String(v);
      if (SECRET.test(k)) return `${k}=********`;
      return `${k}=${maskUrl(text)}`;
    });
}

/** The kafkajs connection options the settings describe (TLS, SASL). */
export function kafkaSecurity(s: Settings): Pick<KafkaConfig, 'ssl' | 'sasl'> {
  const sasl: SASLOptions | undefined = s.KAFKA_SASL_MECHANISM
    ? ({ mechanism: s.KAFKA_SASL_MECHANISM, username: s.KAFKA_SASL_USERNAME!, password: s.KAFKA_SASL_PASSWORD! } as SASLOptions)
    : undefined;
  return { ssl: s.KAFKA_SSL || undefined, sasl };
}

export interface PgConnection {
  host: string;
  port: number;
  user: string;
  password?: string;
  database: string;
  ssl?: boolean;
}

/** The Postgres connection of DATABASE_URL, as the sinks take it. */
export function pgConnection(databaseUrl: string): PgConnection {
  const u = new URL(databaseUrl);
  const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || 'weir';
  const sslmode = u.searchParams.get('sslmode');
  return {
    host: decodeURIComponent(u.hostname) || '127.0.0.1',
    port: u.port ? Number(u.port) : 5432,
    user: decodeURIComponent(u.username) || 'postgres',
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    database,
    ...(sslmode && sslmode !== 'disable' ? { ssl: true } : {}),
  };
}

/** The Redis connection of REDIS_URL (`redis://[user:password@]host:port/db`, `rediss://` for TLS). */
export function redisOptions(redisUrl: string): RedisOptions {
  const u = new URL(redisUrl);
  const db = u.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) throw new ConfigError(`REDIS_URL ${maskUrl(redisUrl)}: the path must be a database number, such as /0`);
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    db: db === '' ? 0 : Number(db),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/** A URL with its password masked, for printing. */
export function maskUrl(url: string): string {
  return url.replace(SECRET_IN_URL, '$1********$3');
}
