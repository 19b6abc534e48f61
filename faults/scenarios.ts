// The faults, one scenario each. A scenario sets the processes' environment and injects its fault
// repeatedly until the window closes; the harness does the rest (see harness.ts).
import postgres from 'postgres';
import type { Result, ScenarioRun, ScenarioSettings } from './harness.ts';

export interface Scenario extends ScenarioSettings {
  name: string;
  what: string;
  /** Before workers start. */
  setup?(run: ScenarioRun): Promise<void>;
  /** Injects faults until `run.windowEndsAt`. */
  inject(run: ScenarioRun): Promise<void>;
  /** After the window, before the drain. */
  teardown?(run: ScenarioRun): Promise<void>;
  /** Extra checks: proof that the fault really hit the path it is about. */
  expect?(result: Result): string[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const between = (min: number, max: number) => min + Math.random() * (max - min);
const open = (run: ScenarioRun) => Date.now() < run.windowEndsAt;

export const scenarios: Scenario[] = [
  {
    name: 'worker-sigkill',
    what: 'SIGKILL a random worker every 0.3-0.8 s (mid-claim, mid-handler, mid-ack), start a new one',
    workers: 3,
    producers: 2,
    workerEnv: { LEASE: '1s', HANDLER_MS: '20' },
    async inject(run) {
      while (open(run)) {
        await sleep(between(300, 800));
        const victim = run.randomWorker();
        if (!victim || !open(run)) continue;
        run.kill(victim[0], victim[1]);
        run.fault();
        run.spawnWorker();
      }
    },
  },
  {
    name: 'producer-sigkill',
    what: 'SIGKILL a random producer every 0.3-0.6 s, mostly mid-transaction, start a new one',
    workers: 2,
    producers: 3,
    producerEnv: { MID_TX_MS: '40', PAUSE_MS: '5' },
    async inject(run) {
      while (open(run)) {
        await sleep(between(300, 600));
        const entries = [...run.producers.entries()];
        const victim = entries[Math.floor(Math.random() * entries.length)];
        if (!victim || !open(run)) continue;
        run.kill(victim[0], victim[1]);
        run.fault();
        run.spawnProducer(run.windowEndsAt - Date.now());
      }
    },
  },
  {
    name: 'terminate-backends',
    what: 'pg_terminate_backend of every crier connection (workers, listeners, producers) every 0.5-1 s',
    workers: 3,
    producers: 2,
    async inject(run) {
      while (open(run)) {
        await sleep(between(500, 1000));
        if (!open(run)) break;
        const [{ n }] = (await run.sql`
          SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()`) as unknown as [{ n: number }];
        run.fault();
        run.notes.push(`${n}`);
      }
      const counts = run.notes.splice(0).map(Number);
      run.notes.push(`${counts.reduce((a, b) => a + b, 0)} connections terminated in ${counts.length} rounds`);
    },
  },
  {
    name: 'postgres-restart',
    what: 'fast shutdown and restart of Postgres, twice, mid-run',
    workers: 3,
    producers: 2,
    async inject(run) {
      const start = Date.now();
      const window = run.windowEndsAt - start;
      for (const at of [0.3, 0.65]) {
        await sleep(Math.max(0, start + window * at - Date.now()));
        const t = Date.now();
        await run.cluster.restartFast();
        run.fault();
        run.notes.push(`restart took ${Date.now() - t} ms`);
      }
    },
  },
  {
    name: 'postgres-crash',
    what: 'immediate shutdown (SIGQUIT: crash recovery on start) of Postgres mid-run',
    workers: 3,
    producers: 2,
    async inject(run) {
      await sleep((run.windowEndsAt - Date.now()) * 0.4);
      const t = Date.now();
      await run.cluster.crashAndRecover();
      run.fault();
      run.notes.push(`crash recovery took ${Date.now() - t} ms`);
    },
  },
  {
    name: 'timeouts-and-hangs',
    what: 'statement_timeout 100ms with 300ms table locks every 0.6 s; 3% of handlers hang until their 700ms timeout',
    workers: 3,
    producers: 2,
    workerEnv: { HANDLER_TIMEOUT: '700ms', LEASE: '2s' },
    producerEnv: { HANG_RATE: '0.03' },
    async setup(run) {
      await run.sql.unsafe(`ALTER DATABASE ${run.database} SET statement_timeout = '100ms'`);
    },
    async inject(run) {
      const locker = postgres(run.url, { max: 1, onnotice: () => {} });
      try {
        while (open(run)) {
          await sleep(between(400, 800));
          if (!open(run)) break;
          await locker.begin(async (tx) => {
            await tx`SET LOCAL statement_timeout = 0`;
            await tx`LOCK TABLE crier.deliveries IN SHARE ROW EXCLUSIVE MODE`;
            run.fault();
            await sleep(300);
          });
        }
      } finally {
        await locker.end({ timeout: 1 });
      }
    },
    async teardown(run) {
      await run.sql.unsafe(`ALTER DATABASE ${run.database} RESET statement_timeout`);
    },
  },
  {
    name: 'stale-lease-ack',
    what: 'SIGSTOP a worker for 2.5 s (its 1s leases expire, others take over), then SIGCONT: its late acks must be refused',
    workers: 3,
    producers: 2,
    workerEnv: { LEASE: '1s', HANDLER_MS: '50' },
    async inject(run) {
      const paused: Promise<void>[] = [];
      while (open(run)) {
        await sleep(between(1000, 1500));
        const victim = run.randomWorker();
        if (!victim || !open(run)) continue;
        victim[1].process.kill('SIGSTOP');
        run.fault();
        paused.push(sleep(2500).then(() => void victim[1].process.kill('SIGCONT')));
      }
      await Promise.all(paused);
    },
    expect: (result) =>
      result.staleAcksRefused > 0 ? [] : ['no late ack or lost lease was seen: the pauses hit idle workers only'],
  },
];
