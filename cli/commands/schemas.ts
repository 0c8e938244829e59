/**
 * `weir schemas register | check | list`: the compatibility gate over the catalog's subjects (`<topic>-value`).
 * - register: checks every subject against its compatibility level, then registers all or none;
 * - check: the same check as a dry run (nothing is registered);
 * - list: the subjects with their versions and schema ids.
 * `--topology` narrows to one application's topics; `--schema topic=file.avsc` checks or registers an edited schema
 * file in place of the catalog's, which is how a schema change is tried before it is committed.
 * An incompatible schema ends the command with one sentence naming the subject and the field, exit code 1.
 */
import fs from 'node:fs';
import { subjectOf, topicContracts } from '../../schemas/catalog.js';
import { checkSchemas, registerSchemas, type SchemaEntry } from '../../schemas/registration.js';
import { InvalidSchemaError } from '../../schemas/errors.js';
import { note, out, settings, topologyArg } from '../common.js';
import { UsageError } from '../errors.js';
import { resolveServices } from '../services.js';

export interface SchemasFlags {
  topology?: string;
  schema?: string[];
  json?: boolean;
  all?: boolean;
}

function entriesOf(flags: SchemasFlags): SchemaEntry[] {
  const app = flags.topology === undefined ? undefined : topologyArg(flags.topology);
  const contracts = topicContracts.filter((c) => !app || c.application === app.name);
  const overrides = new Map<string, string>();
  for (const spec of flags.schema ?? []) {
    const m = /^([^=]+)=(.+)$/.exec(spec);
    if (!m) throw new UsageError(`--schema takes topic=path/to/schema.avsc, not '${spec}'`);
    const [, topic, file] = m as unknown as [string, string, string];
    if (!contracts.some((c) => c.topic === topic)) {
      throw new UsageError(`--schema ${spec}: topic '${topic}' is not among the topics checked (${contracts.map((c) => c.topic).join(', ')})`);
    }
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`--schema ${spec}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    try {
      JSON.parse(text);
    } catch (err) {
      throw new InvalidSchemaError(`${file} is not valid JSON: ${(err as Error).message}`);
    }
    overrides.set(topic, text);
  }
  return contracts.map((c) => ({ subject: subjectOf(c.topic), schema: overrides.get(c.topic) ?? c.valueSchema }));
}

export async function schemasRegister(flags: SchemasFlags): Promise<void> {
  const entries = entriesOf(flags);
  const services = await resolveServices(settings(), note, { kafka: false, registry: true });
  const results = await registerSchemas(services.registry, entries);
  if (flags.json) return out(JSON.stringify(results, null, 2));
  const width = Math.max(...results.map((r) => r.subject.length));
  for (const r of results) out(`${r.subject.padEnd(width)}  version ${r.version}  id ${r.id}  ${r.new ? 'registered' : 'unchanged'}`);
  const added = results.filter((r) => r.new).length;
  out(`${added} registered, ${results.length - added} already registered`);
}

export async function schemasCheck(flags: SchemasFlags): Promise<void> {
  const entries = entriesOf(flags);
  const services = await resolveServices(settings(), note, { kafka: false, registry: true });
  const checks = await checkSchemas(services.registry, entries);
  if (flags.json) {
    out(JSON.stringify(checks.map(({ error, ...c }) => ({ ...c, ...(error ? { error: error.message } : {}) })), null, 2));
  } else {
    const width = Math.max(...checks.map((c) => c.subject.length));
    for (const c of checks) {
      const what =
        c.status === 'registered'
          ? `registered as version ${c.version} (id ${c.id})`
          : c.status === 'new-subject'
            ? 'new subject: would be version 1'
            : c.status === 'compatible'
              ? `compatible (${c.level}${c.checkedVersions.length > 0 ? ` with version ${c.checkedVersions.join(', ')}` : ''}): would be a new version`
              : `INCOMPATIBLE (${c.level})`;
      out(`${c.subject.padEnd(width)}  ${what}`);
    }
  }
  const refused = checks.filter((c) => c.error);
  if (refused.length > 0) {
    for (const c of refused.slice(1)) note(c.error!.message);
    throw refused[0]!.error!;
  }
}

export async function schemasList(flags: SchemasFlags): Promise<void> {
  const services = await resolveServices(settings(), note, { kafka: false, registry: true });
  const client = services.registry;
  const catalog = new Set(entriesOf(flags).map((e) => e.subject));
  const subjects = flags.all ? (await client.subjects()).sort() : [...catalog];
  const rows: Array<{ subject: string; level: string; versions: Array<{ version: number; id: number }> }> = [];
  for (const subject of subjects) {
    const versions = await client.versions(subject);
    const detail: Array<{ version: number; id: number }> = [];
    for (const v of versions) {
      const r = await client.version(subject, v);
      if (r) detail.push({ version: r.version, id: r.id });
    }
    rows.push({ subject, level: versions.length > 0 ? await client.compatibility(subject) : '', versions: detail });
  }
  if (flags.json) return out(JSON.stringify(rows, null, 2));
  const width = Math.max(...rows.map((r) => r.subject.length), 7);
  for (const r of rows) {
    const versions = r.versions.length === 0 ? 'not registered' : r.versions.map((v) => `v${v.version} (id ${v.id})`).join(', ');
    out(`${r.subject.padEnd(width)}  ${versions}${r.level ? `  [${r.level}]` : ''}`);
  }
}
