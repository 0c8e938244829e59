import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Worker } from './worker.js';

/**
 * Prometheus metrics of one worker, fed only by the worker's typed events (nothing is sprinkled through the engine).
 * Responsible for:
 * - records in and out, dead letters, processor counts (duplicates dropped), aborted transactions;
 * - batch processing time, commit duration, end-to-end latency (event time → committed output);
 * - consumer lag per partition, restore progress per task and store, readiness.
 */
export function attachWorkerMetrics(worker: Worker, registry: Registry, applicationId: string): () => void {
  const labels = { app: applicationId };
  const recordsIn = new Counter({ name: 'weir_records_in_total', help: 'Input records processed', labelNames: ['app'], registers: [registry] });
  const recordsOut = new Counter({ name: 'weir_records_out_total', help: 'Records committed to output topics', labelNames: ['app', 'topic'], registers: [registry] });
  const deadLetters = new Counter({ name: 'weir_dead_letters_total', help: 'Records sent to the dead-letter topic', labelNames: ['app', 'stage'], registers: [registry] });
  const counts = new Counter({ name: 'weir_processor_events_total', help: 'Occurrences counted by processors (e.g. duplicates)', labelNames: ['app', 'processor', 'name'], registers: [registry] });
  const aborted = new Counter({ name: 'weir_transactions_aborted_total', help: 'Task transactions that failed and were aborted', labelNames: ['app'], registers: [registry] });
  const commits = new Histogram({
    name: 'weir_commit_duration_seconds',
    help: 'Duration of a task commit (send, offsets, transaction commit, store write)',
    labelNames: ['app'],
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const e2e = new Histogram({
    name: 'weir_end_to_end_latency_seconds',
    help: 'From an output record’s event time to the commit that published it',
    labelNames: ['app'],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const lag = new Gauge({ name: 'weir_consumer_lag', help: 'Records behind the end of an input partition', labelNames: ['app', 'topic', 'partition'], registers: [registry] });
  const restoreRemaining = new Gauge({
    name: 'weir_restore_remaining_records',
    help: 'Changelog offsets left to restore per task and store (0 when done)',
    labelNames: ['app', 'task', 'store'],
    registers: [registry],
  });
  const restored = new Counter({ name: 'weir_restored_records_total', help: 'Changelog records restored', labelNames: ['app'], registers: [registry] });
  const ready = new Gauge({ name: 'weir_ready', help: '1 when every assigned task is restored and running', labelNames: ['app'], registers: [registry] });
  ready.set(labels, 0);
  const readyTimer = setInterval(() => ready.set(labels, worker.ready ? 1 : 0), 500);
  readyTimer.unref();
  const restoredSoFar = new Map<string, number>();

  const offs = [
    worker.on('processed', (i) => recordsIn.inc(labels, i.records)),
    worker.on('dead-letter', (i) => deadLetters.inc({ ...labels, stage: i.stage })),
    worker.on('processor.count', (i) => counts.inc({ ...labels, processor: i.processor, name: i.name }, i.n)),
    worker.on('task.aborted', () => aborted.inc(labels)),
    worker.on('lag', (i) => lag.set({ ...labels, topic: i.topic, partition: String(i.partition) }, i.lag)),
    worker.on('task.committed', (i) => {
      commits.observe(labels, i.durationMs / 1000);
      for (const [topic, n] of i.outputs) recordsOut.inc({ ...labels, topic }, n);
      for (const t of i.timestamps) e2e.observe(labels, Math.max(0, i.committedAt - t) / 1000);
    }),
    worker.on('task.restore', (i) => {
      restoreRemaining.set({ ...labels, task: i.taskId, store: i.store }, Math.max(0, i.end - i.next));
      const key = `${i.taskId}/${i.store}`;
      restored.inc(labels, Math.max(0, i.restored - (restoredSoFar.get(key) ?? 0)));
      restoredSoFar.set(key, i.restored);
    }),
  ];
  return () => {
    clearInterval(readyTimer);
    for (const off of offs) off();
  };
}
