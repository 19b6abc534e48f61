// The faults, one scenario each. A scenario sets the processes' environment and injects its fault
// repeatedly until the window closes; the harness does the rest (see harness.ts).
import postgres from 'postgres';
import type { Result, ScenarioRun, ScenarioSettings } from './harness.ts';
import { firstAccepted } from './recovery.ts';

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

/** Each worker handles again within this of Postgres accepting connections after a restart or crash (issue 16.5). */
const restartBoundMs = 5000;
/** ... and within this of a silent network healing (issue 21), with the worker's default deadlines. */
const healBoundMs = 30_000;

/** Restarts (or crashes) Postgres and marks when it accepts connections again as a recovery point. */
async function restart(run: ScenarioRun, label: string, how: 'restartFast' | 'crashAndRecover'): Promise<number> {
  const t = Date.now();
  let accepted: Promise<number> | undefined;
  await run.cluster[how](() => {
    accepted = firstAccepted(run.url);
  });
  const at = await accepted!;
  run.fault();
  run.markRecovery(label, at, restartBoundMs);
  return at - t;
}

/**
 * A silent network for `stallMs` between the proxied workers and Postgres, then a heal: by
 * resetting the stalled connections, or only for new ones (the stalled stay open and silent).
 */
function stall(heal: 'reset' | 'new-only'): Pick<Scenario, 'inject' | 'expect'> {
  const stallMs = 12_000;
  return {
    async inject(run) {
      await sleep(2000);
      run.proxy!.stall();
      run.fault(`network to ${run.proxied.join(', ')} silent for ${stallMs / 1000} s`);
      await sleep(stallMs);
      const reset = heal === 'reset' ? run.proxy!.healByReset() : (run.proxy!.healNewOnly(), 0);
      run.markRecovery(heal === 'reset' ? 'the heal (reset)' : 'the heal (new connections only)', Date.now(), healBoundMs);
      run.notes.push(heal === 'reset' ? `${reset} stalled connections reset` : 'stalled connections left open and silent');
      await sleep(Math.max(0, run.windowEndsAt - Date.now()));
    },
    // The worker must say what happened: replacing its client or its LISTEN connection.
    expect: (result) =>
      result.proxied
        .filter((id) => !/database client replaced|LISTEN connection lost/.test(result.outputs.get(id) ?? ''))
        .map((id) => `worker ${id} behind the silent network logged nothing about it`),
  };
}

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
    // Producers run on for several seconds after each restart, so every worker has work to show
    // that it handles again (bounded recovery: within 5 s of Postgres accepting connections).
    windowSeconds: 14,
    async inject(run) {
      const start = Date.now();
      for (const [i, at] of [1500, 6500].entries()) {
        await sleep(Math.max(0, start + at - Date.now()));
        run.notes.push(`restart ${i + 1} down ${await restart(run, `restart ${i + 1}`, 'restartFast')} ms`);
      }
    },
  },
  {
    name: 'postgres-crash',
    what: 'immediate shutdown (SIGQUIT: crash recovery on start) of Postgres mid-run',
    workers: 3,
    producers: 2,
    windowSeconds: 10,
    async inject(run) {
      await sleep(2500);
      run.notes.push(`down ${await restart(run, 'the crash', 'crashAndRecover')} ms`);
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
  {
    name: 'stall-heal-reset',
    what: 'the network between 2 of 3 workers and Postgres holds every byte for 12 s (sockets kept open), then the stalled connections are reset',
    workers: 3,
    producers: 2,
    proxiedWorkers: 2,
    windowSeconds: 30,
    ...stall('reset'),
  },
  {
    name: 'stall-heal-new-only',
    what: 'the same silence, healed for new connections only: the stalled ones stay open and say nothing, for ever',
    workers: 3,
    producers: 2,
    proxiedWorkers: 2,
    windowSeconds: 30,
    ...stall('new-only'),
  },
];
