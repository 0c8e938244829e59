/**
 * Registering schemas under subjects, checked first.
 * - `checkSchemas` (dry run): for each subject, reads its compatibility level (the subject's, else the global one)
 *   and checks the new schema locally with Avro schema resolution against the latest registered version, or every
 *   version for a *_TRANSITIVE level. BACKWARD: the new schema reads data of the old one; FORWARD: the old one reads
 *   data of the new one; FULL: both; NONE: nothing. Incompatibilities come back as errors naming subject and field.
 * - `registerSchemas`: the same check for all entries, then registers them — or none when any is incompatible.
 *   The registry checks again; its 409 (another writer got there first) is the same SchemaIncompatibleError.
 * The local check is stricter than some registries: a decimal whose scale changes does not resolve (the value
 * would change by a power of ten), though registries that ignore logical types accept it.
 */
import { ConfigError } from '../runtime/errors.js';
import type { AvroSchemaInput, CompatibilityLevel, SchemaRegistryClient } from './registry-client.js';
import { resolutionProblem } from './avro-serde.js';
import { SchemaIncompatibleError } from './errors.js';

export interface SchemaEntry {
  subject: string;
  schema: AvroSchemaInput;
}

export interface SchemaCheck {
  subject: string;
  level: CompatibilityLevel;
  /**
   * - `registered`: this exact schema is already a version of the subject (nothing to do);
   * - `new-subject`: the subject has no version yet;
   * - `compatible`: it would become a new version;
   * - `incompatible`: it would be refused; `error` says why.
   */
  status: 'registered' | 'new-subject' | 'compatible' | 'incompatible';
  /** For `registered`: its id and version. */
  id?: number;
  version?: number;
  /** The registered versions the schema was checked against. */
  checkedVersions: number[];
  error?: SchemaIncompatibleError;
}

export interface SchemaRegistration {
  subject: string;
  id: number;
  version: number;
  /** False when this exact schema was registered already. */
  new: boolean;
}

/** Check every entry against its subject without registering anything. */
export async function checkSchemas(client: SchemaRegistryClient, entries: readonly SchemaEntry[]): Promise<SchemaCheck[]> {
  refuseDuplicates(entries);
  const checks: SchemaCheck[] = [];
  for (const entry of entries) checks.push(await checkOne(client, entry));
  return checks;
}

/**
 * Check every entry, then register them all; throws the first SchemaIncompatibleError (registering nothing) when
 * any is incompatible.
 */
export async function registerSchemas(client: SchemaRegistryClient, entries: readonly SchemaEntry[]): Promise<SchemaRegistration[]> {
  const checks = await checkSchemas(client, entries);
  const refused = checks.find((c) => c.error);
  if (refused?.error) throw refused.error;
  const results: SchemaRegistration[] = [];
  for (const [i, check] of checks.entries()) {
    const { subject, schema } = entries[i]!;
    if (check.status === 'registered') {
      results.push({ subject, id: check.id!, version: check.version!, new: false });
      continue;
    }
    const { id } = await client.register(subject, schema);
    const registered = await client.lookup(subject, schema);
    results.push({ subject, id, version: registered?.version ?? (await client.latest(subject))?.version ?? -1, new: true });
  }
  return results;
}

async function checkOne(client: SchemaRegistryClient, { subject, schema }: SchemaEntry): Promise<SchemaCheck> {
  const type = client.parse(schema);
  const level = await client.compatibility(subject);
  const existing = await client.lookup(subject, schema);
  if (existing) return { subject, level, status: 'registered', id: existing.id, version: existing.version, checkedVersions: [] };
  const versions = await client.versions(subject);
  if (versions.length === 0) return { subject, level, status: 'new-subject', checkedVersions: [] };
  if (level === 'NONE') return { subject, level, status: 'compatible', checkedVersions: [] };

  const base = level.replace('_TRANSITIVE', '') as 'BACKWARD' | 'FORWARD' | 'FULL';
  // newest first, so the message names the version most likely to matter
  const against = level.endsWith('_TRANSITIVE') ? [...versions].reverse() : versions.slice(-1);
  const checked: number[] = [];
  for (const v of against) {
    const old = await client.version(subject, v);
    if (!old) continue; // deleted meanwhile
    checked.push(v);
    const oldType = client.parse(old.schema);
    let problem: string | undefined;
    if (base === 'BACKWARD' || base === 'FULL') {
      problem = resolutionProblem(type, oldType, { reader: 'the new schema', writer: `version ${v}` });
    }
    if (problem === undefined && (base === 'FORWARD' || base === 'FULL')) {
      problem = resolutionProblem(oldType, type, { reader: `version ${v}`, writer: 'the new schema' });
    }
    if (problem !== undefined) {
      return { subject, level, status: 'incompatible', checkedVersions: checked, error: new SchemaIncompatibleError(subject, level, problem, v) };
    }
  }
  return { subject, level, status: 'compatible', checkedVersions: checked };
}

function refuseDuplicates(entries: readonly SchemaEntry[]): void {
  const seen = new Set<string>();
  for (const { subject } of entries) {
    if (seen.has(subject)) throw new ConfigError(`subject ${subject} is listed twice; give one schema per subject`);
    seen.add(subject);
  }
}
