// crier metrics: a Prometheus exporter of the database gauges (crier/prometheus), for operators
// who run no worker in that process. Runs until Ctrl-C or SIGTERM, then closes its server and its
// connection.
import { toMilliseconds } from '../../src/duration.ts';
import { loadPeer } from '../../src/relay/peer.ts';
import { countOption, logFormatOption, logFormatSpec, stringOption, UsageError, type Command } from '../command.ts';

export const metricsCommand: Command = {
  path: ['metrics'],
  runsUntilSignal: true,
  summary: 'serve the database gauges (backlog, oldest due age, stuck, dead, ...) to Prometheus on /metrics',
  details:
    'One exporter per database: each scrape reads crier.subscription_gauges and crier.published_events\n' +
    'in one query (deadline --timeout), so run one, not one per worker. Serves, per subscription:\n' +
    'crier_backlog, crier_oldest_due_age_seconds, crier_retrying, crier_delayed, crier_running, crier_stuck,\n' +
    'crier_oldest_stuck_seconds, crier_dead_letters, crier_waiting, crier_blocked_keys, crier_subscription_paused;\n' +
    'crier_published_total by topic; crier_database_up and crier_database_reading_seconds.\n' +
    'The handled/failed/retried/dead counters and the latency histograms come from the workers\' own\n' +
    'processes (crier/prometheus observeWorker). Needs prom-client: npm install prom-client.',
  options: {
    port: { type: 'string', value: 'PORT', description: 'port to listen on (default 9464)' },
    host: { type: 'string', value: 'HOST', description: 'address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)' },
    interval: { type: 'string', value: 'DURATION', description: 'scrapes within this time of a reading get that reading again (default 1s)' },
    timeout: { type: 'string', value: 'DURATION', description: 'a database reading not done by then fails: crier_database_up 0 (default 5s)' },
    'log-format': logFormatSpec,
  },
  examples: ['crier metrics', 'crier metrics --port 9464 --host 0.0.0.0 --interval 10s'],
  async run({ values, databaseUrl, global, signal, out }) {
    const port = countOption(values, 'port', 9464);
    if (port > 65535) throw new UsageError(`--port: ${port} is not a port (0-65535)`);
    const url = databaseUrl();
    await loadPeer('prom-client', () => import('prom-client'), 'crier metrics');
    const { prometheusMetrics } = await import('../../src/integrations/prometheus/index.ts');
    const metrics = prometheusMetrics();
    const gauges = metrics.collectDatabaseGauges(url, {
      schema: global.schema,
      interval: toMilliseconds(stringOption(values, 'interval') ?? '1s', '--interval'),
      timeout: toMilliseconds(stringOption(values, 'timeout') ?? '5s', '--timeout'),
      logger: logFormatOption(values),
    });
    try {
      // A first reading now: a wrong URL or an unmigrated database shows at start, not at the first scrape.
      const first = await gauges.refresh();
      if (signal.aborted) return;
      const server = await metrics.serve({ port, host: stringOption(values, 'host') ?? '127.0.0.1' });
      out.note(`serving ${server.url} (${first.subscriptions.length} subscriptions; Ctrl-C to stop)`);
      await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
      await server.close();
    } finally {
      await gauges.close();
    }
  },
};
