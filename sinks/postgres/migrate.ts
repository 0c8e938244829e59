/**
 * Database and schema setup of the Postgres sink.
 * - `ensureDatabase`: create the database if it is missing (idempotent, safe when several processes race);
 * - `migrate`: apply the numbered `.sql` files under `./migrations/` with node-pg-migrate: one transaction per file,
 *   its table `weir_migrations` in the sink's schema (created if missing), search_path set to that schema, and
 *   Postgres' advisory lock so concurrent sinks wait for each other rather than apply a file twice;
 * - `dropSchema`: remove a sink's schema with everything in it (tables, offsets, migrations table).
 */
import { fileURLToPath } from 'node:url';
import type { ClientBase, ClientConfig } from 'pg';
import { quoteIdent } from './writers.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));
export const MIGRATIONS_TABLE = 'weir_migrations';

export async function ensureDatabase(config: ClientConfig & { database: string }): Promise<boolean> {
  const { default: pg } = await import('pg');
  const admin = new pg.Client({ ...config, database: 'postgres' });
  admin.on('error', () => undefined); // a cut connection fails the pending query; the event alone must not crash
  await admin.connect();
  try {
    const found = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [config.database]);
    if (found.rowCount) return false;
    try {
      await admin.query(`CREATE DATABASE ${quoteIdent(config.database)}`);
      return true;
    } catch (err) {
      // 42P04 duplicate_database, 23505 unique_violation: another process created it between our check and create
      const code = (err as { code?: string }).code;
      if (code === '42P04' || code === '23505') return false;
      throw err;
    }
  } finally {
    await admin.end().catch(() => undefined);
  }
}

export async function migrate(
  config: ClientConfig,
  schema: string,
  log: (msg: string) => void = () => undefined,
): Promise<string[]> {
  const { runner } = await import('node-pg-migrate');
  const applied = await runner({
    databaseUrl: config,
    dir: MIGRATIONS_DIR,
    direction: 'up',
    migrationsTable: MIGRATIONS_TABLE,
    schema,
    createSchema: true,
    createMigrationsSchema: true,
    singleTransaction: false,
    checkOrder: true,
    advisoryLockMode: 'wait',
    logger: { debug: () => undefined, info: log, warn: log, error: log },
  });
  return applied.map((m) => m.name);
}

/** Drop the schema and everything in it (the sink's tables, its offsets, its migrations table); none: nothing happens. */
export async function dropSchema(client: ClientBase, schema: string): Promise<void> {
  await client.query(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`);
}
