/**
 * The project's schema registry (infra/registry.ts) against the real thing: Apicurio Registry's
 * Confluent-compatible API, backed by PostgreSQL.
 *
 * - Schema ids survive a restart of the registry process, and records written before it (kept in Kafka) still
 *   decode with a client that has never seen their schema.
 * - The default compatibility rule is BACKWARD: an incompatible new version is refused with 409.
 *
 * This file always checks the project's own local registry (it restarts it), whatever
 * SCHEMA_REGISTRY_URL says; it is started (or reused) and stopped at the end if this file started it.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ccompatUrl, ensureRegistry, pinRegistry, registryStatus, type RegistryHandle } from '../../infra/registry.js';
import { SchemaRegistryClient, avroSerde } from '../../schemas/index.js';
import { createTopics, produce, readAll } from '../helpers/kafka.js';

const CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json';
delete process.env.SCHEMA_REGISTRY_URL;

interface Reply {
  status: number;
  body: any;
}

async function call(base: string, method: string, pathname: string, body?: unknown): Promise<Reply> {
  const res = await fetch(`${base}${pathname}`, {
    method,
    headers: { Accept: CONTENT_TYPE, ...(body === undefined ? {} : { 'Content-Type': CONTENT_TYPE }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed };
}

/** V1's values; amounts in minor units. */
interface PaymentV1 {
  paymentId: string;
  amount: number;
}

const record = (fields: object[]) => JSON.stringify({ type: 'record', name: 'Payment', namespace: 'weir.test', fields });

const V1 = record([
  { name: 'paymentId', type: 'string' },
  { name: 'amount', type: 'long' },
]);
// BACKWARD-compatible: the new field has a default, so readers on v2 can read v1 data
const V2_COMPATIBLE = record([
  { name: 'paymentId', type: 'string' },
  { name: 'amount', type: 'long' },
  { name: 'currency', type: 'string', default: 'EUR' },
]);
// BACKWARD-incompatible: a required field without default
const V2_INCOMPATIBLE = record([
  { name: 'paymentId', type: 'string' },
  { name: 'amount', type: 'long' },
  { name: 'vendor', type: 'string' },
]);

describe('schema registry (Apicurio, ccompat v7, PostgreSQL storage)', () => {
  let first: RegistryHandle;
  let current: RegistryHandle;
  let api: string;
  const subject = `weir-test-payment-${Date.now()}-${randomBytes(3).toString('hex')}-value`;
  let id: number;

  let wasPinned = false;

  beforeAll(async () => {
    wasPinned = (await registryStatus()).pinned;
    first = await ensureRegistry();
    current = first;
    api = ccompatUrl(first.url);
  }, 300_000);

  let restarted = false;

  afterAll(async () => {
    if (!first) return;
    // the registry's data persists: remove this run's subject (soft, then permanent delete)
    await call(api, 'DELETE', `/subjects/${subject}`).catch(() => undefined);
    await call(api, 'DELETE', `/subjects/${subject}?permanent=true`).catch(() => undefined);
    if (first.started) {
      // this file started it: leave it stopped
      await current.stop();
    } else if (restarted && wasPinned) {
      // it was running before this file (e.g. `tsx infra/registry.ts start`) and the restart
      // below replaced its process: keep it running, as it was
      pinRegistry();
    } else {
      await current.release();
    }
  }, 60_000);

  it('registers an Avro schema and returns its id', async () => {
    const reg = await call(api, 'POST', `/subjects/${subject}/versions`, { schema: V1 });
    expect(reg.status).toBe(200);
    expect(typeof reg.body.id).toBe('number');
    id = reg.body.id;

    // registering the same schema again is idempotent
    const again = await call(api, 'POST', `/subjects/${subject}/versions`, { schema: V1 });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(id);

    const byId = await call(api, 'GET', `/schemas/ids/${id}`);
    expect(byId.status).toBe(200);
    expect(JSON.parse(byId.body.schema)).toEqual(JSON.parse(V1));
  });

  it(
    'keeps the subject and the same id across a restart of the registry; records written before it still decode',
    async () => {
      expect(id).toBeTypeOf('number');

      // records written before the restart with the project's serde, kept in Kafka; the topic's value subject is
      // the one registered above
      const topic = subject.replace(/-value$/, '');
      const values: PaymentV1[] = [
        { paymentId: 'r-1', amount: 1250 },
        { paymentId: 'r-2', amount: -75 },
        { paymentId: 'r-3', amount: 123_456_789_012 },
      ];
      const writer = avroSerde<PaymentV1>(new SchemaRegistryClient({ url: api }), V1);
      const written = await Promise.all(values.map((v) => writer.serialize(v, { topic })));
      for (const bytes of written) expect(bytes.readInt32BE(1)).toBe(id);
      await createTopics([{ topic, partitions: 1 }]);
      await produce(topic, 1, values.map((v, i) => ({ key: v.paymentId, value: written[i]! })));

      restarted = true;
      await current.stop();
      // the process is really gone
      await expect(fetch(`${api}/subjects`, { signal: AbortSignal.timeout(3000) })).rejects.toThrow();

      current = await ensureRegistry();
      expect(current.started).toBe(true);
      expect(ccompatUrl(current.url)).toBe(api);

      const subjects = await call(api, 'GET', '/subjects');
      expect(subjects.status).toBe(200);
      expect(subjects.body).toContain(subject);

      const v1 = await call(api, 'GET', `/subjects/${subject}/versions/1`);
      expect(v1.status).toBe(200);
      expect(v1.body.id).toBe(id);
      expect(v1.body.subject).toBe(subject);

      const byId = await call(api, 'GET', `/schemas/ids/${id}`);
      expect(byId.status).toBe(200);
      expect(JSON.parse(byId.body.schema)).toEqual(JSON.parse(V1));

      // lookup by content finds the same id
      const lookup = await call(api, 'POST', `/subjects/${subject}`, { schema: V1 });
      expect(lookup.status).toBe(200);
      expect(lookup.body.id).toBe(id);

      // read back from Kafka and decoded by a client with nothing cached: the schema comes from the restarted registry
      const stored = await readAll(topic, 1);
      expect(stored.map((m) => m.key?.toString())).toEqual(values.map((v) => v.paymentId));
      const reader = avroSerde<PaymentV1>(new SchemaRegistryClient({ url: api }), V1, { autoRegister: false });
      expect(await Promise.all(stored.map((m) => reader.deserialize(m.value!, { topic })))).toEqual(values);
    },
    300_000,
  );

  it('applies BACKWARD compatibility by default: a new required field is refused with 409', async () => {
    const config = await call(api, 'GET', '/config');
    expect(config.status).toBe(200);
    expect(config.body.compatibilityLevel).toBe('BACKWARD');

    const check = await call(api, 'POST', `/compatibility/subjects/${subject}/versions/latest`, {
      schema: V2_INCOMPATIBLE,
    });
    expect(check.status).toBe(200);
    expect(check.body.is_compatible).toBe(false);

    const refused = await call(api, 'POST', `/subjects/${subject}/versions`, { schema: V2_INCOMPATIBLE });
    expect(refused.status).toBe(409);

    // a compatible evolution (new field with a default) is accepted as version 2
    const accepted = await call(api, 'POST', `/subjects/${subject}/versions`, { schema: V2_COMPATIBLE });
    expect(accepted.status).toBe(200);
    expect(accepted.body.id).not.toBe(id);
    const versions = await call(api, 'GET', `/subjects/${subject}/versions`);
    expect(versions.body).toEqual([1, 2]);
  });
});
