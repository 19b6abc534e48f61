// One LISTEN connection per worker process. NOTIFY is only a hint (the table is the truth), so this
// module's job is small: deliver wake-ups, and after any lost connection reconnect with backoff,
// LISTEN again and report it, so the worker can catch up on what it may have missed by polling.
import type postgres from 'postgres';
import { openClient, type Connection } from '../connection.ts';
import { describeConnectionError } from '../errors.ts';
import { errorMessage, type Logger } from '../logger.ts';

export interface ListenerEvents {
  /** A NOTIFY arrived: the subscription names it carries, or '*' for all. */
  onWake(subscriptions: string[] | '*'): void;
  /** LISTEN is (re-)established after a gap: notifications may have been lost. */
  onReconnect(): void;
}

export class Listener {
  private client: postgres.Sql | undefined;
  private closed = false;
  private connected = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;

  constructor(
    private readonly connection: Connection,
    private readonly channel: string,
    private readonly events: ListenerEvents,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client: postgres.Sql = openClient(this.connection, {
      max: 1,
      idle_timeout: 0,
      max_lifetime: null,
      fetch_types: false,
      onnotify: (_channel, payload) => {
        this.events.onWake(payload === '*' || payload === '' ? '*' : payload.split(' '));
      },
      onclose: () => this.lost(client),
    });
    this.client = client;
    try {
      await client.unsafe(`LISTEN "${this.channel.replace(/"/g, '""')}"`);
    } catch (error) {
      this.lost(client, error);
      if (this.failures === 1) throw error;
      return;
    }
    const wasDisconnected = this.failures > 0;
    this.connected = true;
    this.failures = 0;
    if (wasDisconnected) {
      this.logger.info('LISTEN connection restored; catching up');
      this.events.onReconnect();
    }
  }

  private lost(client: postgres.Sql, error?: unknown): void {
    if (this.closed || client !== this.client) return;
    this.client = undefined;
    if (this.connected || this.failures === 0) {
      this.logger.warn(
        `LISTEN connection lost (${error ? describeConnectionError(error) : 'closed by the server'}); reconnecting, polling meanwhile`,
      );
    }
    this.connected = false;
    this.failures++;
    client.end({ timeout: 0 }).catch(() => {});
    const delay = Math.min(5000, 100 * 2 ** Math.min(this.failures - 1, 6));
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.connect().catch((e) => this.logger.warn(`LISTEN reconnect failed: ${errorMessage(e)}`));
    }, delay);
    // Until LISTEN is back, the worker must not sleep on a wake-up that cannot come.
    this.events.onReconnect();
  }

  get isListening(): boolean {
    return this.connected;
  }

  async stop(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end({ timeout: 1 });
  }
}
