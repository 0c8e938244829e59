import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { attachWorkerMetrics } from '../../runtime/metrics.js';
import { attachSinkMetrics } from '../../sinks/metrics.js';
import type { Worker } from '../../runtime/worker.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('the Grafana dashboard', () => {
  it('queries only metrics that weir exports', async () => {
    const dashboard = JSON.parse(readFileSync(path.join(root, 'infra/grafana/weir-dashboard.json'), 'utf8')) as {
      panels: Array<{ targets: Array<{ expr: string }> }>;
    };
    const used = new Set(dashboard.panels.flatMap((p) => p.targets.flatMap((t) => t.expr.match(/weir_[a-z_]+/g) ?? [])));
    const registry = new Registry();
    const idle = { on: () => () => undefined, ready: false } as unknown as Worker;
    const detach = attachWorkerMetrics(idle, registry, 'x');
    const exported = new Set((await registry.getMetricsAsJSON()).flatMap((m) => (String(m.type) === 'histogram' ? [m.name, `${m.name}_bucket`] : [m.name])));
    detach();
    // sink processes and the main job serve the sinks' metrics
    const sinks = new Registry();
    attachSinkMetrics([], sinks)();
    for (const m of await sinks.getMetricsAsJSON()) for (const n of String(m.type) === 'histogram' ? [m.name, `${m.name}_bucket`] : [m.name]) exported.add(n);
    expect([...used].filter((n) => !exported.has(n))).toEqual([]);
    expect(used.size).toBeGreaterThan(10);
  });
});
