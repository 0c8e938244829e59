import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { SinkRunner } from './sink-runner.js';

const BREAKER_STATES = ['closed', 'half-open', 'open'] as const;

/**
 * Prometheus metrics of sink runners, for a `weir sink` process (one runner) and the main job (several) alike.
 * Responsible for:
 * - batch latency (one flush: the write and the offsets, in one database transaction) and rows/records written;
 * - lag per topic-partition (records of the log not yet in the database) and the breaker state, read from
 *   `status()` at scrape time.
 * The returned function unsubscribes from the runners' events.
 */
export function attachSinkMetrics(runners: readonly SinkRunner[], registry: Registry): () => void {
  const flushes = new Histogram({
    name: 'weir_sink_batch_duration_seconds',
    help: 'Duration of one sink flush: the batch and its offsets written in one database transaction',
    labelNames: ['sink'],
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [registry],
  });
  const rows = new Counter({ name: 'weir_sink_rows_written_total', help: 'Rows or keys a sink has written', labelNames: ['sink'], registers: [registry] });
  new Gauge({
    name: 'weir_sink_records_written',
    help: 'Records a sink has written to its database since it started',
    labelNames: ['sink'],
    registers: [registry],
    collect() {
      for (const r of runners) this.set({ sink: r.name }, r.status().recordsWritten);
    },
  });
  new Gauge({
    name: 'weir_sink_lag',
    help: 'Records of a topic partition not yet in the sink’s database',
    labelNames: ['sink', 'topic', 'partition'],
    registers: [registry],
    collect() {
      for (const r of runners) {
        for (const p of r.status().partitions) if (p.lag !== null) this.set({ sink: r.name, topic: p.topic, partition: String(p.partition) }, p.lag);
      }
    },
  });
  new Gauge({
    name: 'weir_sink_breaker_state',
    help: 'Circuit breaker of a sink’s database: 1 for its current state (closed, half-open, open), 0 for the others',
    labelNames: ['sink', 'state'],
    registers: [registry],
    collect() {
      for (const r of runners) {
        const current = r.status().breaker;
        for (const state of BREAKER_STATES) this.set({ sink: r.name, state }, state === current ? 1 : 0);
      }
    },
  });
  const off = runners.map((r) =>
    r.on('flush', (e) => {
      flushes.observe({ sink: r.name }, e.durationMs / 1000);
      rows.inc({ sink: r.name }, e.rows);
    }),
  );
  return () => off.forEach((f) => f());
}
