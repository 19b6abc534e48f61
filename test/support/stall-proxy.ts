// A TCP proxy (node:net) between clients and Postgres that can go silent: stall() holds every byte
// of every connection, open or new, while keeping both sockets open, as a failed switch, a cloud NAT
// that lost its state or a load balancer's silent drop look to a client. Killing a backend or
// restarting Postgres closes sockets cleanly and proves nothing about silence; this does.
//
// Two ways to heal, as networks do:
//   healByReset()   the stalled connections are reset (RST to the client, closed to the server);
//   healNewOnly()   only connections opened from now on pass; the stalled ones stay open and silent.
// A stalled connection carries nothing, not even a close: when the client gives up on it, the
// server's side stays open (as Postgres would see it: a client that went quiet), until a reset
// heal or close().
import net from 'node:net';

interface Link {
  client: net.Socket;
  server: net.Socket | undefined;
  stalled: boolean;
}

export class StallProxy {
  private readonly links = new Set<Link>();
  private stalling = false;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  /** Listens on a free port of 127.0.0.1 and forwards to the host and port of `databaseUrl`. */
  static async start(databaseUrl: string): Promise<StallProxy> {
    const url = new URL(databaseUrl);
    const target = { host: url.hostname || '127.0.0.1', port: Number(url.port || 5432) };
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const proxy = new StallProxy(server, (server.address() as net.AddressInfo).port, target);
    server.on('connection', (socket) => proxy.accept(socket));
    return proxy;
  }

  /** `databaseUrl` with its host and port replaced by this proxy's. */
  url(databaseUrl: string): string {
    const url = new URL(databaseUrl);
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    return url.toString();
  }

  /** Connections open now (stalled or not). */
  get connections(): number {
    return this.links.size;
  }

  /** From now on no byte passes in either direction, on open connections and on new ones. */
  stall(): void {
    this.stalling = true;
    for (const link of this.links) link.stalled = true;
  }

  /** Resets every stalled connection; new connections pass again. */
  healByReset(): number {
    this.stalling = false;
    let reset = 0;
    for (const link of this.links) {
      if (!link.stalled) continue;
      reset++;
      this.drop(link);
    }
    return reset;
  }

  /** New connections pass again; the stalled ones stay open and silent for ever. */
  healNewOnly(): void {
    this.stalling = false;
  }

  async close(): Promise<void> {
    for (const link of this.links) this.drop(link);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    const link: Link = { client, server: undefined, stalled: this.stalling };
    this.links.add(link);
    client.on('error', () => this.clientGone(link));
    client.on('close', () => this.clientGone(link));
    // A connection that arrives during a stall is held from its first byte: it never reaches Postgres.
    client.on('data', (chunk) => {
      if (!link.stalled) link.server?.write(chunk);
    });
    if (link.stalled) return;
    const server = net.connect(this.target.port, this.target.host);
    link.server = server;
    client.pause();
    server.on('connect', () => client.resume());
    server.on('data', (chunk) => {
      if (!link.stalled) client.write(chunk);
    });
    server.on('error', () => this.drop(link));
    server.on('close', () => {
      if (!link.stalled) this.drop(link); // a stalled link says nothing, not even that the server left
    });
  }

  private clientGone(link: Link): void {
    if (link.stalled && link.server && !link.server.destroyed) return; // the close is held too
    this.drop(link);
  }

  private drop(link: Link): void {
    if (!this.links.delete(link)) return;
    link.client.resetAndDestroy();
    link.server?.destroy();
  }
}
