import net from 'node:net';

/**
 * A TCP proxy to a server on this machine (a database, the schema registry), for an outage that only the clients
 * connected through it see: the server itself, and everyone else using it, carry on. `down()` cuts every connection
 * through it and resets each new one at once, as a crashed server would; `restore()` lets connections through again.
 * `refused` counts the connections reset while down; `received` the bytes clients sent through it (connections are
 * kept alive, so counting them would not count requests).
 */
export class OutageProxy {
  received = 0;
  refused = 0;
  private isUp = true;
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(port: number, host = '127.0.0.1'): Promise<OutageProxy> {
    let proxy!: OutageProxy;
    const server = net.createServer((client) => proxy.accept(client, host, port));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    proxy = new OutageProxy(server, (server.address() as net.AddressInfo).port);
    return proxy;
  }

  private accept(client: net.Socket, host: string, port: number): void {
    if (!this.isUp) {
      this.refused++;
      client.resetAndDestroy();
      return;
    }
    client.on('data', (chunk: Buffer) => (this.received += chunk.length));
    const upstream = net.connect(port, host);
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  }

  /** The outage begins: every connection is cut, every new one reset. */
  down(): void {
    this.isUp = false;
    for (const s of this.sockets) s.destroy();
  }

  /** The server is back. */
  restore(): void {
    this.isUp = true;
  }

  async close(): Promise<void> {
    this.down();
    await new Promise((r) => this.server.close(r));
  }
}
