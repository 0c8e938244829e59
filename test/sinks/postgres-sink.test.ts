/**
 * The Postgres sink on the real broker and the real database: exactly once through batches, SIGKILLs, cut
 * connections and aborted transactions. Each test has its own topics, sink name (consumer group) and schema.
 */
import { describe, expect, it } from 'vitest';
import { OffsetConflictError } from '../../sinks/errors.js';
import { PostgresSink } from '../../sinks/postgres/postgres-sink.js';
import { MIGRATIONS_DIR, MIGRATIONS_TABLE } from '../../sinks/postgres/migrate.js';
import { postgresWriters } from '../../sinks/postgres/writers.js';
import { SinkRunner, type SinkRunnerConfig } from '../../sinks/sink-runner.js';
import { buildSink, type SinkSpec } from '../fixtures/sink-factory.js';
import { decisionKey, entryKey, ledgerEntries, positions, reconciliations, routingDecisions, sharedIds } from '../fixtures/sink-data.js';
import { partitionForKey } from '../../runtime/partitioner.js';
import { brokers, createTopics, unique, waitFor } from '../helpers/kafka.js';
import { expectTablesExact } from './postgres-check.js';
import {
  dropSchema,
  freshSchema,
  PG,
  pgClient,
  recordHistory,
  sinkTests,
  pgStoredOffsets,
  produceTransactional,
  storeAllThenStop,
  sustainedOutages,
  terminateSinkConnections,
  waitUntilStored,
} from './support.js';

const PARTITIONS = 3;
const scope = sinkTests(pgClient, dropSchema, (c) => c.end());

async function setup(label: string, kinds: Array<keyof SinkSpec['topics']>): Promise<SinkSpec> {
  const topics: SinkSpec['topics'] = {};
  for (const k of kinds) topics[k] = unique(`sink-${label}-${k}`);
  await createTopics(Object.values(topics).map((topic) => ({ topic: topic!, partitions: PARTITIONS })));
  const schema = freshSchema(label);
  scope.names.push(schema);
  return { kind: 'postgres', name: unique(`pg-${label}`), topics, schema };
}

function startRunner(spec: SinkSpec, extra: Partial<SinkRunnerConfig> = {}): SinkRunner {
  const { sink, serdes } = buildSink(spec);
  const runner = new SinkRunner({
    sink,
    brokers: brokers(),
    topics: serdes,
    batchSize: 500,
    flushIntervalMs: 100,
    sessionTimeoutMs: 6000,
    retry: { initialRetryTime: 50, maxRetryTime: 400 },
    breaker: { failureThreshold: 3, coolDownMs: 300 },
    ...extra,
  });
  scope.runners.push(runner);
  return runner;
}

const topicsOf = (spec: SinkSpec) => Object.values(spec.topics) as string[];
const stored = (spec: SinkSpec) => () => pgStoredOffsets(scope.control, spec.schema!, spec.name);

describe('Postgres sink (real Kafka, real Postgres)', () => {
  it('a few thousand records of the four outputs land exactly once; the tables equal the expected ones', async () => {
    const spec = await setup('exact', ['ledgerEntries', 'positions', 'routingDecisions', 'reconciliations']);
    const ledger = ledgerEntries(4000);
    const pos = positions(3000);
    const routing = routingDecisions(1500);
    const recs = reconciliations(1500);
    await produceTransactional([
      { topic: spec.topics.ledgerEntries!, partitions: PARTITIONS, records: ledger.records },
      { topic: spec.topics.positions!, partitions: PARTITIONS, records: pos.records },
      { topic: spec.topics.routingDecisions!, partitions: PARTITIONS, records: routing.records },
      { topic: spec.topics.reconciliations!, partitions: PARTITIONS, records: recs.records },
    ]);
    const total = ledger.records.length + pos.records.length + routing.records.length + recs.records.length;
    const runner = startRunner(spec, { batchSize: 2000 });
    const flushes: Array<{ at: number; records: number }> = [];
    runner.on('flush', (e) => flushes.push({ at: Date.now(), records: e.records }));
    await runner.start();
    await waitUntilStored('every offset stored', topicsOf(spec), stored(spec));
    // throughput once consuming: from the end of the first flush to the end of the last (the group join excluded)
    const [first, ...rest] = flushes.filter((f) => f.records > 0);
    const seconds = (rest[rest.length - 1]!.at - first!.at) / 1000;
    const records = rest.reduce((n, f) => n + f.records, 0);
    console.log(`postgres sink: ${total} records in ${flushes.length} flushes; ${Math.round(records / seconds)} records/s after the first flush`);
    const status = runner.status();
    expect(status.state).toBe('running');
    expect(status.breaker).toBe('closed');
    expect(status.recordsWritten).toBe(total);
    expect(status.partitions.every((p) => p.lag === 0)).toBe(true);
    await runner.stop();
    expect(runner.status().state).toBe('stopped');
    await expectTablesExact(scope.control, spec.schema!, {
      ledger: ledger.expected,
      positions: pos.expected,
      routing: routing.expected,
      reconciliations: recs.expected,
    });
  });

  it('a graceful stop flushes what is pending, then a restart reads on from the stored offsets', async () => {
    const spec = await setup('stop', ['ledgerEntries']);
    const ledger = ledgerEntries(1200, 7);
    const first = ledger.records.slice(0, 600);
    await produceTransactional([{ topic: spec.topics.ledgerEntries!, partitions: PARTITIONS, records: first }]);
    const a = startRunner(spec, { batchSize: 100_000, flushIntervalMs: 600_000 });
    await a.start();
    await waitFor('every record taken', () => a.status().pendingRecords === first.length, 30_000, 50);
    expect(a.status().batches).toBeLessThanOrEqual(1); // at most an offsets-only flush; the records are pending
    await a.stop();
    const count = async () => Number((await scope.control.query(`SELECT count(*) FROM "${spec.schema}".ledger_entries`)).rows[0].count);
    await expect(count()).resolves.toBe(new Set(first.map((r) => entryKey(r.value))).size);
    await produceTransactional([{ topic: spec.topics.ledgerEntries!, partitions: PARTITIONS, records: ledger.records.slice(600) }]);
    const b = startRunner(spec);
    await b.start();
    await waitUntilStored('every offset stored', topicsOf(spec), stored(spec));
    await b.stop();
    await expectTablesExact(scope.control, spec.schema!, { ledger: ledger.expected });
  });

  it('SIGKILL inside flush transactions, several times: no row twice, none missing', async () => {
    const spec = await setup('kill', ['ledgerEntries', 'positions']);
    spec.slowMs = 30;
    const ledger = ledgerEntries(12_000, 11);
    const pos = positions(6000, 12);
    const inputs = [
      { topic: spec.topics.ledgerEntries!, partitions: PARTITIONS, records: ledger.records },
      { topic: spec.topics.positions!, partitions: PARTITIONS, records: pos.records },
    ];
    // five waves: each worker that is killed has records arriving while it runs
    const wave = (i: number) => inputs.map((input) => ({ ...input, records: input.records.slice((i * input.records.length) / 5, ((i + 1) * input.records.length) / 5) }));
    const start = () => {
      return scope.child('test/fixtures/sink-worker.ts', { SINK: JSON.stringify(spec), BATCH_SIZE: '150', FLUSH_MS: '50' });
    };
    let killedInTransaction = 0;
    for (let round = 0; round < 4; round++) {
      const producing = produceTransactional(wave(round), { perTransaction: 300, pauseMs: 30 });
      const w = start();
      await w.waitForOutput(/"event":"flush"/, 60_000);
      await new Promise((r) => setTimeout(r, Math.random() * 1000));
      // wait for a flush transaction of this worker to be open, then kill it there
      const deadline = Date.now() + 10_000;
      for (;;) {
        const open = await scope.control.query(
          `SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND xact_start IS NOT NULL AND state <> 'idle'`,
          [`weir-sink:${spec.name}`],
        );
        if (open.rowCount || Date.now() > deadline) {
          if (open.rowCount) killedInTransaction++;
          break;
        }
        await new Promise((r) => setTimeout(r, 2));
      }
      w.kill('SIGKILL');
      expect(await w.waitExit()).toBe('SIGKILL');
      await producing;
    }
    expect(killedInTransaction).toBeGreaterThanOrEqual(3);
    await produceTransactional(wave(4), { perTransaction: 300 });
    await storeAllThenStop(start(), topicsOf(spec), stored(spec));
    await expectTablesExact(scope.control, spec.schema!, { ledger: ledger.expected, positions: pos.expected });
  }, 300_000);

  it('two runners share the work; one leaves gracefully mid-stream, the other takes over; the tables are exact', async () => {
    const spec = await setup('scale', ['ledgerEntries', 'positions']);
    spec.slowMs = 10;
    const ledger = ledgerEntries(9000, 111);
    const pos = positions(4500, 112);
    const producing = produceTransactional(
      [
        { topic: spec.topics.ledgerEntries!, partitions: PARTITIONS, records: ledger.records },
        { topic: spec.topics.positions!, partitions: PARTITIONS, records: pos.records },
      ],
      { perTransaction: 150, pauseMs: 40 },
    );
    const a = startRunner(spec, { batchSize: 150 });
    const b = startRunner(spec, { batchSize: 150 });
    await a.start();
    await waitFor('a first flush by A', () => a.status().batches > 0, 30_000, 50);
    await b.start();
    await waitFor('both flushing', () => a.status().partitions.length > 0 && b.status().batches > 0, 60_000, 50);
    expect(a.status().partitions.length + b.status().partitions.length).toBe(2 * PARTITIONS);
    await a.stop();
    await waitFor('B owns every partition', () => b.status().partitions.length === 2 * PARTITIONS && b.status().state === 'running', 30_000, 50);
    await producing;
    await waitUntilStored('every offset stored', topicsOf(spec), stored(spec));
    await b.stop();
    await expectTablesExact(scope.control, spec.schema!, { ledger: ledger.expected, positions: pos.expected });
  }, 120_000);

  it('a worker frozen inside a flush (SIGSTOP) wakes after its partitions moved: the offsets guard keeps the tables exact', async () => {
    const spec = await setup('zombie', ['ledgerEntries', 'positions']);
    spec.slowMs = 150;
    const ledger = ledgerEntries(6000, 121);
    const pos = positions(3000, 122);
    const inputs = [
      { topic: spec.topics.ledgerEntries!, partitions: PARTITIONS, records: ledger.records },
      { topic: spec.topics.positions!, partitions: PARTITIONS, records: pos.records },
    ];
    const half = (i: number) => inputs.map((input) => ({ ...input, records: input.records.slice((i * input.records.length) / 2, ((i + 1) * input.records.length) / 2) }));
    await produceTransactional(half(0), { perTransaction: 300 });
    const start = () => {
      return scope.child('test/fixtures/sink-worker.ts', { SINK: JSON.stringify(spec), BATCH_SIZE: '200', FLUSH_MS: '50' });
    };
    const a = start();
    await a.waitForOutput(/"event":"flush"/, 60_000);
    await waitFor(
      'a flush transaction of A open',
      async () => (await scope.control.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND xact_start IS NOT NULL`, [`weir-sink:${spec.name}`])).rowCount! > 0,
      10_000,
      2,
    );
    a.kill('SIGSTOP');
    const b = start();
    await b.waitForOutput(/"event":"running"/, 60_000); // A's session expired: B owns everything
    await new Promise((r) => setTimeout(r, 1000));
    a.kill('SIGCONT');
    await produceTransactional(half(1), { perTransaction: 300 });
    await waitUntilStored('every offset stored', topicsOf(spec), stored(spec), 120_000);
    // the guard fired: one of them found the offsets moved (a conflict: batch dropped, offsets read again), or found
    // its exact batch already stored by the other (same records from the same offset: nothing written twice)
    expect(a.output + b.output).toMatch(/another consumer moved the offsets|"alreadyApplied":true/);
    a.kill('SIGTERM');
    b.kill('SIGTERM');
    expect(await a.waitExit()).toBe(0);
    expect(await b.waitExit()).toBe(0);
    await expectTablesExact(scope.control, spec.schema!, { ledger: ledger.expected, positions: pos.expected });
  }, 180_000);

  it('connections cut under load: the breaker and status report the outage, the sink recovers, the tables are exact', async () => {
    const spec = await setup('cut', ['ledgerEntries', 'positions']);
    spec.slowMs = 40;
    const ledger = ledgerEntries(8000, 21);
    const pos = positions(4000, 22);
    const producing = produceTransactional(
      [
        { topic: spec.topics.ledgerEntries!, partitions: PARTITIONS, records: ledger.records },
        { topic: spec.topics.positions!, partitions: PARTITIONS, records: pos.records },
      ],
      { perTransaction: 200, pauseMs: 40 },
    );
    const runner = startRunner(spec, { batchSize: 200 });
    const history = recordHistory(runner);
    await runner.start();
    await waitFor('a first flush', () => runner.status().batches > 0, 30_000, 50);
    await sustainedOutages(runner, history, () => terminateSinkConnections(scope.control, spec.name), { pollMs: 15 });
    expect(runner.status().lastError?.message).toMatch(/terminat|connection/i);
    await producing;
    await waitUntilStored('every offset stored', topicsOf(spec), stored(spec), 120_000);
    await runner.stop();
    await expectTablesExact(scope.control, spec.schema!, { ledger: ledger.expected, positions: pos.expected });
  }, 180_000);

  it('records of aborted transactions never land; the offsets pass over them', async () => {
    const spec = await setup('abort', ['ledgerEntries', 'positions']);
    const ledger = ledgerEntries(900, 31);
    const pos = positions(600, 32);
    const part = <T,>(list: readonly T[], i: number) => list.slice(i * (list.length / 3), (i + 1) * (list.length / 3));
    const inputs = (i: number) => [
      { topic: spec.topics.ledgerEntries!, partitions: PARTITIONS, records: part(ledger.records, i) },
      { topic: spec.topics.positions!, partitions: PARTITIONS, records: part(pos.records, i) },
    ];
    await produceTransactional(inputs(0), { perTransaction: 100 });
    await produceTransactional(inputs(1), { perTransaction: 100, abort: true });
    await produceTransactional(inputs(2), { perTransaction: 100 });
    await produceTransactional(inputs(1).map((i) => ({ ...i, records: i.records.slice(0, 10) })), { abort: true }); // aborted at the very end
    const runner = startRunner(spec);
    await runner.start();
    await waitUntilStored('every offset stored, past the aborted records', topicsOf(spec), stored(spec));
    await runner.stop();
    const committed = [...part(ledger.records, 0), ...part(ledger.records, 2)];
    const committedKeys = new Set(committed.map((r) => entryKey(r.value)));
    const expectedLedger = new Map([...ledger.expected].filter(([key]) => committedKeys.has(key)));
    const expectedPos = new Map<string, (typeof pos.rows)[number]>();
    for (const i of [0, 2]) for (const row of part(pos.rows, i)) expectedPos.set(`${row.accountId}|${row.instrument}`, row);
    await expectTablesExact(scope.control, spec.schema!, { ledger: expectedLedger, positions: expectedPos });
  });

  it('a record that cannot be decoded stalls its partition, named in the status; the other partitions go on', async () => {
    const spec = await setup('poison', ['ledgerEntries']);
    const topic = spec.topics.ledgerEntries!;
    const ledger = ledgerEntries(300, 41);
    await produceTransactional([{ topic, partitions: PARTITIONS, records: ledger.records }]);
    // a broken record into partition 1, then more good records behind it
    const { kafka } = await import('../helpers/kafka.js');
    const producer = kafka().producer({ transactionalId: unique('poison'), idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const tx = await producer.transaction();
    const [sent] = await tx.send({ topic, messages: [{ key: 'x', value: '{"entryId": not json', partition: 1 }] });
    await tx.commit();
    const badOffset = sent!.baseOffset!;
    await producer.disconnect();
    const after = ledgerEntries(600, 41).records.slice(300);
    await produceTransactional([{ topic, partitions: PARTITIONS, records: after }]);
    const runner = startRunner(spec);
    await runner.start();
    await waitFor('partition 1 stalled', () => runner.status().partitions.some((p) => p.stalled !== null && p.partition === 1), 30_000, 50);
    const ends = await (await import('./support.js')).endOffsets([topic]);
    await waitFor('partitions 0 and 2 written to their end', async () => {
      const s = await stored(spec)();
      return [0, 2].every((p) => s.get(`${topic}:${p}`) === ends.get(`${topic}:${p}`));
    });
    const status = runner.status();
    expect(status.state).toBe('stalled');
    const p1 = status.partitions.find((p) => p.partition === 1)!;
    expect(p1.stalled).toMatch(new RegExp(`record ${topic}/1@${badOffset} cannot be written`));
    expect(status.lastError?.message).toMatch(/cannot be decoded/);
    // the stored offset never passes the bad record
    expect(BigInt(p1.committed!)).toBeLessThanOrEqual(BigInt(badOffset));
    // every record of partition 1 before the bad one is written (the stall can show before their flush lands)
    const before = ledger.records.filter((r) => partitionForKey(Buffer.from(r.key), PARTITIONS) === 1);
    const entries = [...new Map(before.map((r) => [entryKey(r.value), r.value])).values()];
    await waitFor('partition 1 written up to the bad record', async () => {
      const rows = await scope.control.query(
        `SELECT 1 FROM "${spec.schema}".ledger_entries JOIN unnest($1::text[], $2::text[]) AS w(account_id, entry_id) USING (account_id, entry_id)`,
        [entries.map((e) => e.accountId), entries.map((e) => e.entryId)],
      );
      return rows.rowCount === entries.length;
    }, 20_000);
    await runner.stop();
  });

  it('a stale batch (zombie) is refused by the offsets compare-and-set; a retried one is recognised as applied', async () => {
    const schema = freshSchema('zombie');
    scope.names.push(schema);
    const sink = new PostgresSink({ name: unique('pg-zombie'), schema, writers: { t: postgresWriters.ledgerEntries() } });
    await sink.init();
    try {
      const rec = (i: number) => ({ topic: 't', partition: 0, offset: BigInt(i), key: 'k', value: ledgerEntries(3, 51).records[i]!.value, timestamp: 0, headers: {} });
      sink.add(rec(0));
      const first = await sink.flush(sink.takeBatch(), [{ topic: 't', partition: 0, expected: null, next: 1n }]);
      expect(first).toEqual({ rows: 1, alreadyApplied: false });
      // the same flush again (its commit reply was lost): recognised, nothing written twice
      sink.add(rec(0));
      expect(await sink.flush(sink.takeBatch(), [{ topic: 't', partition: 0, expected: null, next: 1n }])).toEqual({ rows: 0, alreadyApplied: true });
      sink.add(rec(1));
      await sink.flush(sink.takeBatch(), [{ topic: 't', partition: 0, expected: 1n, next: 2n }]);
      // a zombie that read from offset 1 too, with other contents
      sink.add(rec(2));
      await expect(sink.flush(sink.takeBatch(), [{ topic: 't', partition: 0, expected: 1n, next: 3n }])).rejects.toThrow(OffsetConflictError);
      const rows = await scope.control.query(`SELECT entry_id FROM "${schema}".ledger_entries ORDER BY entry_id`);
      expect(rows.rows.map((r) => r.entry_id)).toEqual([rec(0).value.entryId, rec(1).value.entryId].sort());
      expect(await sink.committedOffsets([{ topic: 't', partition: 0 }, { topic: 't', partition: 1 }])).toEqual(
        new Map([
          ['t:0', 2n],
          ['t:1', null],
        ]),
      );
    } finally {
      await sink.destroy();
      await sink.destroy();
    }
  });

  it('ids unique only inside an account or a tenant: accounts sharing trade ids and tenants sharing conversations keep their own rows', async () => {
    const spec = await setup('shared', ['ledgerEntries', 'routingDecisions']);
    const accounts = ['ACC-A', 'ACC-B', 'ACC-C', 'ACC-D', 'ACC-E', 'ACC-F'];
    const tenants = ['tenant-a', 'tenant-b', 'tenant-c', 'tenant-d', 'tenant-e', 'tenant-f'];
    const shared = sharedIds({ accounts, tenants, trades: 40, conversations: 40 });
    const half = <T,>(list: readonly T[], i: number) => list.slice(i * Math.ceil(list.length / 2), (i + 1) * Math.ceil(list.length / 2));
    const inputs = (i: number) => [
      { topic: spec.topics.ledgerEntries!, partitions: PARTITIONS, records: half(shared.ledger.records, i) },
      { topic: spec.topics.routingDecisions!, partitions: PARTITIONS, records: half(shared.routing.records, i) },
    ];
    const runner = startRunner(spec);
    await runner.start();
    // the first half: ids meet inside a batch; the second half: ids meet the rows the tables already hold
    await produceTransactional(inputs(0));
    await waitUntilStored('the first half stored', topicsOf(spec), stored(spec));
    await produceTransactional(inputs(1));
    await waitUntilStored('every offset stored', topicsOf(spec), stored(spec));
    await runner.stop();
    expect(runner.status().recordsWritten).toBe(shared.ledger.records.length + shared.routing.records.length);
    await expectTablesExact(scope.control, spec.schema!, { ledger: shared.ledger.expected, routing: shared.routing.expected });

    // one entry id, posted by every account: a row per account with that account's own amount
    const entry = await scope.control.query<{ account_id: string; amount: string; ledger_account: string }>(
      `SELECT account_id, amount, ledger_account FROM "${spec.schema}".ledger_entries WHERE entry_id = $1 ORDER BY account_id`,
      ['T-7:1:cash'],
    );
    const wantEntry = accounts.map((accountId) => {
      const e = shared.ledger.expected.get(entryKey({ accountId, entryId: 'T-7:1:cash' }))!;
      return { account_id: accountId, amount: e.amountText, ledger_account: e.ledgerAccount };
    });
    expect(new Set(wantEntry.map((e) => e.amount)).size).toBe(accounts.length);
    expect(entry.rows).toEqual(wantEntry);
    // the amend of one account posts reversals in that account only
    const reversals = await scope.control.query<{ account_id: string; entry_id: string; reverses: string }>(
      `SELECT account_id, entry_id, reverses FROM "${spec.schema}".ledger_entries WHERE reverses IS NOT NULL ORDER BY entry_id`,
    );
    expect(reversals.rows).toEqual([
      { account_id: 'ACC-A', entry_id: 'T-0:1:cash:reversal', reverses: 'T-0:1:cash' },
      { account_id: 'ACC-A', entry_id: 'T-0:1:securities:reversal', reverses: 'T-0:1:securities' },
    ]);

    // one conversation id, decided in every tenant: a row per tenant with that tenant's agent; the tenant that
    // decided it again holds its latest decision, the others their own
    const decision = await scope.control.query<{ tenant_id: string; agent_id: string; requested_at: Date }>(
      `SELECT tenant_id, agent_id, requested_at FROM "${spec.schema}".routing_decisions WHERE conversation_id = $1 ORDER BY tenant_id`,
      ['conv-0'],
    );
    const wantDecision = tenants.map((tenantId) => {
      const d = shared.routing.expected.get(decisionKey({ tenantId, conversationId: 'conv-0' }))!;
      return { tenant_id: tenantId, agent_id: d.agentId, requested_at: new Date(d.requestedAt) };
    });
    expect(decision.rows).toEqual(wantDecision);
    const redecided = shared.routing.records.filter((r) => r.value.tenantId === 'tenant-a' && r.value.conversationId === 'conv-0');
    expect(redecided).toHaveLength(2);
    expect(decision.rows[0]!.requested_at.getTime()).toBe(redecided[1]!.value.requestedAt);
  });

  it('a database migrated before the account and tenant keys keeps its rows and takes the new keys', async () => {
    const schema = freshSchema('upgrade');
    scope.names.push(schema);
    // the schema as deployed before: only the first migration applied
    const { runner } = await import('node-pg-migrate');
    const silent = () => undefined;
    await runner({
      databaseUrl: PG,
      dir: MIGRATIONS_DIR,
      direction: 'up',
      count: 1,
      migrationsTable: MIGRATIONS_TABLE,
      schema,
      createSchema: true,
      createMigrationsSchema: true,
      checkOrder: true,
      logger: { debug: silent, info: silent, warn: silent, error: silent },
    });
    // the primary key of every table of the sink (node-pg-migrate's own table aside)
    const keysOf = async () => {
      const res = await scope.control.query<{ table: string; key: string[] }>(
        `SELECT c.relname AS table, array_agg(a.attname::text ORDER BY k.ord) AS key
           FROM pg_index i
           JOIN pg_class c ON c.oid = i.indrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
          WHERE i.indisprimary AND n.nspname = $1 AND c.relname <> $2
          GROUP BY c.relname`,
        [schema, MIGRATIONS_TABLE],
      );
      return Object.fromEntries(res.rows.map((r) => [r.table, r.key]));
    };
    expect(await keysOf()).toMatchObject({ ledger_entries: ['entry_id'], routing_decisions: ['conversation_id'] });
    const shared = sharedIds({ accounts: ['ACC-A', 'ACC-B'], tenants: ['tenant-a', 'tenant-b'], trades: 1, conversations: 1 }, 61);
    const [a, b] = [...shared.ledger.expected.values()].filter((e) => e.entryId === 'T-0:1:cash');
    const [x, y] = [...shared.routing.expected.values()];
    expect([a!.accountId, b!.accountId, x!.tenantId, y!.tenantId]).toEqual(['ACC-A', 'ACC-B', 'tenant-a', 'tenant-b']);
    // rows written under the old keys
    const iso = (ms: number) => new Date(ms).toISOString();
    await scope.control.query(
      `INSERT INTO "${schema}".ledger_entries (entry_id, account_id, trade_id, trade_version, ledger_account, side, amount, currency, reverses, posted_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [a!.entryId, a!.accountId, a!.tradeId, a!.tradeVersion, a!.ledgerAccount, a!.side, a!.amountText, a!.currency, a!.reverses, iso(a!.postedAt)],
    );
    await scope.control.query(
      `INSERT INTO "${schema}".routing_decisions (conversation_id, tenant_id, agent_id, skill, priority, requested_at, assigned_at, wait_ms, queued, reason)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [x!.conversationId, x!.tenantId, x!.agentId, x!.skill, x!.priority, iso(x!.requestedAt), iso(x!.assignedAt), x!.waitMs, x!.queued, x!.reason],
    );

    const sink = new PostgresSink({
      name: unique('pg-upgrade'),
      schema,
      writers: { ledger: postgresWriters.ledgerEntries(), routing: postgresWriters.routingDecisions() },
    });
    await sink.init(); // migrates the rest
    try {
      const applied = await scope.control.query<{ name: string }>(`SELECT name FROM "${schema}".${MIGRATIONS_TABLE} ORDER BY id`);
      expect(applied.rows.map((r) => r.name)).toEqual(['0001_sink-tables', '0002_account-and-tenant-keys']);
      expect(await keysOf()).toEqual({
        ledger_entries: ['account_id', 'entry_id'],
        routing_decisions: ['tenant_id', 'conversation_id'],
        positions: ['account_id', 'instrument'],
        reconciliations: ['payment_id'],
        sink_offsets: ['sink', 'topic', 'partition'],
      });
      // the other account's entry and the other tenant's decision under the same ids, and the old rows replayed
      const rec = (topic: string, offset: bigint, value: object) => ({ topic, partition: 0, offset, key: 'k', value, timestamp: 0, headers: {} });
      sink.add(rec('ledger', 0n, a!));
      sink.add(rec('ledger', 1n, b!));
      sink.add(rec('routing', 0n, x!));
      sink.add(rec('routing', 1n, y!));
      const flushed = await sink.flush(sink.takeBatch(), [
        { topic: 'ledger', partition: 0, expected: null, next: 2n },
        { topic: 'routing', partition: 0, expected: null, next: 2n },
      ]);
      expect(flushed).toEqual({ rows: 3, alreadyApplied: false }); // b, and x (latest wins: rewritten) and y
      await expectTablesExact(scope.control, schema, { ledger: new Map([a!, b!].map((e) => [entryKey(e), e])), routing: shared.routing.expected });
    } finally {
      await sink.destroy();
    }
  });
});
