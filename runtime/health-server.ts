import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface HealthSource {
  /** The process is alive and its loop is not wedged. */
  live(): boolean;
  /** Ready to serve: for a worker, every assigned task restored and running. */
  ready(): boolean;
  /** Extra detail for /health (tasks, breaker state, …). */
  details?(): unknown;
}

export interface HealthServer {
  port: number;
  url: string;
  close(): Promise<void>;
}

/**
 * Serves `/metrics` (Prometheus text) and `/health`, `/health/liveness`, `/health/readiness` (200 or 503 with JSON).
 * Listens on loopback unless told otherwise.
 */
export async function startHealthServer(opts: { registry: Registry; source: HealthSource; port?: number; host?: string }): Promise<HealthServer> {
  const host = opts.host ?? '127.0.0.1';
  const server = http.createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET') return send(res, 405, { error: 'only GET' });
      if (path === '/metrics') {
        res.writeHead(200, { 'content-type': opts.registry.contentType });
        return res.end(await opts.registry.metrics());
      }
      const live = opts.source.live();
      const ready = opts.source.ready();
      if (path === '/health/liveness') return send(res, live ? 200 : 503, { live });
      if (path === '/health/readiness') return send(res, ready ? 200 : 503, { ready });
      if (path === '/health') return send(res, live && ready ? 200 : 503, { live, ready, details: opts.source.details?.() });
      return send(res, 404, { error: `no such endpoint: ${path}; try /metrics, /health, /health/liveness, /health/readiness` });
    })().catch((err) => send(res, 500, { error: (err as Error).message }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://${host}:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
