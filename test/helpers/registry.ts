import { afterAll, inject } from 'vitest';
import { ccompatUrl } from '../../infra/registry.js';
import { SchemaRegistryClient } from '../../schemas/index.js';

/** The test registry's Confluent-compatible API (the registry the global setup started or reused). */
export const registryUrl = (): string => ccompatUrl(inject('schemaRegistryUrl'));

/**
 * A client of the test registry, and the subjects a test file registers: each one pushed onto `subjects` is deleted
 * (permanently) after the file's tests.
 */
export function registrySubjects(): { client: SchemaRegistryClient; subjects: string[] } {
  const client = new SchemaRegistryClient({ url: registryUrl() });
  const subjects: string[] = [];
  afterAll(async () => {
    for (const s of subjects) await client.deleteSubject(s, { permanent: true }).catch(() => undefined);
  });
  return { client, subjects };
}
