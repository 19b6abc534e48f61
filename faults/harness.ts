// One scenario's run: its own database on the suite's cluster, worker and producer processes, the
// bookkeeping of faults injected, and the drain-and-check at the end.
//
//   prepare   CREATE DATABASE, migrate, table `handled`
//   start     spawn workers (wait for "ready"), then producers for the fault window
//   inject    the scenario's faults, until the window closes (crashed workers are replaced)
//   drain     wait for producers to finish and every delivery to be done (or a timeout)
//   check     stop workers, run the checker, measure each recovery point (recovery.ts), drop the database
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { migrate } from '../src/migrate.ts';
import type { SubscriptionHistory } from '../src/subscriptions.ts';
import { spawnTs, type Child } from '../test/support/processes.ts';
import { StallProxy } from '../test/support/stall-proxy.ts';
import { attemptErrors, check, handledTable, txDuplicateDetails, wrongWinnerDetails, type AckedRange, type Verdict } from './checker.ts';
import type { Cluster } from './cluster.ts';
import { recoveryProblems, recoveryTimes, type RecoveryPoint } from './recovery.ts';

export interface ScenarioSettings {
  workers: number;
  producers: number;
  workerEnv?: Record<string, string>;
  producerEnv?: Record<string, string>;
  /** The producers' window in seconds, when the scenario needs another than the suite's. */
  windowSeconds?: number;
  /** The first this many workers reach Postgres through a StallProxy (run.proxy), the others directly. */
  proxiedWorkers?: number;
  /** The three subscriptions' history (faults/worker.ts): 'full' (default) or 'failures'. */
  history?: SubscriptionHistory;
}

/** A recovery point and, per worker, ms until it handled again (null: never). */
export interface Recovery {
  point: RecoveryPoint;
  times: Map<string, number | null>;
}

export interface Result {
  verdict: Verdict;
  faults: number;
  crashes: number;
  postgresJsCrashes: number;
  producerCrashes: number;
  staleAcksRefused: number;
  recoveryMs: number | null;
  /** Bounded recovery: per point the scenario marked, each worker's time to handle again. */
  recoveries: Recovery[];
  /** Broken recovery bounds, one line per worker. */
  recoveryProblems: string[];
  /** Each worker's output, by id (for the scenario's own checks). */
  outputs: Map<string, string>;
  /** The workers that went through the proxy. */
  proxied: string[];
  drained: boolean;
  notes: string[];
  /** Workers and producers that did not report running this process's postgres.js (faults/driver.mjs). */
  otherDriver: string[];
}

/** Every process the suite started, so that a signal to the suite can take them down too. */
export const children = new Set<Child>();

export function killAll(): void {
  for (const child of children) child.process.kill('SIGKILL');
}

/**
 * postgres.js 3.4.9 (porsager/postgres#1154, #1066, #1208): when a reserved connection closes
 * mid-transaction, sql.begin rejects at once but lets the callback run on, and the ROLLBACK or
 * COMMIT it sends when the callback settles goes to the closed socket from a setImmediate, where the
 * TypeError cannot be caught: the process dies. crier's transactional handlers run in sql.begin, so
 * a worker can die this way when its connections are cut. The process is gone, so nothing it held
 * can do harm (its leases expire, its open transaction rolled back): the checker still judges every
 * event. Counted apart from other deaths, which fail the scenario.
 */
const postgresJsWriteBug = /TypeError: Cannot read properties of null \(reading 'write'\)\n\s+at Immediate\.nextWrite \(\S+postgres(-3)?\/src\/connection\.js/;

/**
 * The postgres.js this process tree runs on, e.g. "postgres.js 3.4.10": faults/driver.mjs (loaded
 * by the npm scripts with --import) resolved it, checked its major and passed the choice on to every
 * child. Exits when `--driver` was given but that file was not loaded (it would be ignored).
 */
export function loadedDriver(asked: string | undefined): string {
  const chosen = process.env.CRIER_TEST_DRIVER;
  if (asked !== undefined && asked !== chosen) {
    console.error(`--driver ${asked} works through faults/driver.mjs: run npm run test:faults -- --driver ${asked} (or npm run soak -- --driver ${asked})`);
    process.exit(2);
  }
  return `postgres.js ${process.env.CRIER_TEST_DRIVER_VERSION ?? '(not checked: faults/driver.mjs not loaded)'}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Retries a query through a restart or a terminated connection. */
export async function retrying<T>(what: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await what();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(100);
    }
  }
}

export class ScenarioRun {
  readonly database = `faults_${randomBytes(4).toString('hex')}`;
  readonly url: string;
  sql!: postgres.Sql;
  readonly workers = new Map<string, Child>();
  readonly producers = new Map<string, Child>();
  readonly killed = new Set<string>();
  readonly acked: AckedRange[] = [];
  readonly notes: string[] = [];
  faults = 0;
  crashes = 0;
  /** Workers that died of postgres.js's deferred write on a closed connection (see postgresJsWriteBug). */
  postgresJsCrashes = 0;
  producerCrashes = 0;
  lastFaultAt = 0;
  windowEndsAt = 0;
  /** Set by prepare() when the scenario has proxied workers. */
  proxy: StallProxy | undefined;
  readonly proxied: string[] = [];
  readonly recoveryPoints: RecoveryPoint[] = [];
  /** Workers that exited by themselves. */
  private readonly died = new Set<string>();
  private readonly workerOutputs = new Map<string, Child>();
  private spawned = 0;
  private closing = false;
  private readonly outputs: Child[] = [];
  /** Every worker and producer, by id, for the driver check. */
  private readonly everyChild = new Map<string, Child>();

  constructor(
    readonly cluster: Cluster,
    readonly settings: ScenarioSettings,
    private readonly log: (line: string) => void,
  ) {
    this.url = cluster.url(this.database);
  }

  async prepare(): Promise<void> {
    const admin = postgres(this.cluster.url(), { max: 1, onnotice: () => {} });
    await admin.unsafe(`CREATE DATABASE ${this.database}`);
    await admin.end();
    await migrate({ connection: this.url });
    this.sql = postgres(this.url, { max: 3, onnotice: () => {}, connect_timeout: 5 });
    await this.sql.unsafe(handledTable);
    if (this.settings.proxiedWorkers) this.proxy = await StallProxy.start(this.url);
  }

  /** Each worker running now must handle an event again within `boundMs` of `at` (ms since the epoch). */
  markRecovery(label: string, at: number, boundMs: number): void {
    const workers = [...this.workers.keys()].filter((id) => !this.killed.has(id));
    this.recoveryPoints.push({ label, at, boundMs, workers });
  }

  fault(what?: string): void {
    this.faults++;
    this.lastFaultAt = Date.now();
    if (what) this.log(`  fault ${this.faults}: ${what}`);
  }

  spawnWorker(): Child {
    const id = `w${++this.spawned}`;
    const proxied = this.proxy !== undefined && this.proxied.length < (this.settings.proxiedWorkers ?? 0);
    if (proxied) this.proxied.push(id);
    const child = spawnTs('../faults/worker.ts', {
      DATABASE_URL: this.url,
      WORKER_ID: id,
      HISTORY: this.settings.history ?? 'full',
      ...(proxied ? { WORKER_DATABASE_URL: this.proxy!.url(this.url) } : {}),
      ...this.settings.workerEnv,
    });
    this.workers.set(id, child);
    this.everyChild.set(id, child);
    this.workerOutputs.set(id, child);
    this.outputs.push(child);
    children.add(child);
    void child.exited.then((exit) => {
      children.delete(child);
      this.workers.delete(id);
      if (this.killed.has(id) || this.closing) return;
      this.died.add(id);
      if (postgresJsWriteBug.test(child.output())) this.postgresJsCrashes++;
      else this.crashes++;
      this.log(`  worker ${id} exited by itself (${exit.code ?? exit.signal}):\n${tail(child.output())}`);
      this.spawnWorker();
    });
    return child;
  }

  spawnProducer(durationMs: number): Child {
    const id = `p${++this.spawned}`;
    const child = spawnTs('../faults/producer.ts', {
      DATABASE_URL: this.url,
      PRODUCER_ID: id,
      DURATION_MS: String(Math.max(0, durationMs)),
      ...this.settings.producerEnv,
    });
    this.producers.set(id, child);
    this.everyChild.set(id, child);
    this.outputs.push(child);
    children.add(child);
    let seen = 0;
    const collect = () => {
      const lines = child.output().split('\n');
      for (; seen < lines.length - 1; seen++) {
        const m = /^committed (\d+) (\d+)$/.exec(lines[seen]!);
        if (m) this.acked.push({ producer: id, from: Number(m[1]), to: Number(m[2]) });
      }
    };
    child.process.stdout!.on('data', collect);
    void child.exited.then((exit) => {
      children.delete(child);
      collect();
      this.producers.delete(id);
      if (this.killed.has(id) || this.closing || /^done$/m.test(child.output())) return;
      // A producer that dies by itself (an uncaught error in the driver, say) is replaced, and counted.
      this.producerCrashes++;
      this.log(`  producer ${id} exited by itself (${exit.code ?? exit.signal}):\n${tail(child.output().replace(/^committed.*\n/gm, ''), 6)}`);
      if (Date.now() < this.windowEndsAt) this.spawnProducer(this.windowEndsAt - Date.now());
    });
    return child;
  }

  /** SIGKILL a process this run owns, marking it so its exit is not counted as a crash. */
  kill(id: string, child: Child): void {
    this.killed.add(id);
    child.process.kill('SIGKILL');
  }

  randomWorker(): [string, Child] | undefined {
    const entries = [...this.workers.entries()].filter(([id]) => !this.killed.has(id));
    return entries[Math.floor(Math.random() * entries.length)];
  }

  async startWorkers(): Promise<void> {
    const started = Array.from({ length: this.settings.workers }, () => this.spawnWorker());
    await Promise.all(started.map((c) => c.waitFor(/^ready$/m, 60_000)));
  }

  startProducers(windowMs: number): void {
    this.windowEndsAt = Date.now() + windowMs;
    for (let i = 0; i < this.settings.producers; i++) this.spawnProducer(windowMs);
  }

  /** Waits for producers to finish and every delivery to be done; returns the recovery time. */
  async drain(timeoutMs: number): Promise<{ drained: boolean; recoveryMs: number | null }> {
    const deadline = Date.now() + timeoutMs;
    while (this.producers.size > 0 && Date.now() < deadline) await sleep(100);
    const from = Math.max(this.lastFaultAt, this.windowEndsAt);
    while (Date.now() < deadline) {
      const open = await retrying(
        () => this.sql`SELECT count(*)::int AS n FROM crier.deliveries WHERE state <> 'done'`,
        Math.max(1000, deadline - Date.now()),
      ).catch(() => [{ n: -1 }]);
      if (open[0]!.n === 0 && this.producers.size === 0) return { drained: true, recoveryMs: Math.max(0, Date.now() - from) };
      await sleep(100);
    }
    return { drained: false, recoveryMs: null };
  }

  async finish(drained: boolean, recoveryMs: number | null): Promise<Result> {
    this.closing = true;
    for (const child of this.producers.values()) child.process.kill('SIGKILL');
    const stopping = [...this.workers.values()].map((child) => {
      child.process.kill('SIGCONT');
      child.process.kill('SIGTERM');
      return Promise.race([child.exited, sleep(5000).then(() => child.process.kill('SIGKILL'))]);
    });
    await Promise.all(stopping);
    const verdict = await retrying(() => check(this.sql, this.acked, [...this.killed]));
    if (verdict.txDuplicates > 0) this.log(`  transactional duplicates:\n${await retrying(() => txDuplicateDetails(this.sql))}`);
    if (verdict.wrongWinner > 0) this.log(`  done by an attempt that did not finish:\n${await retrying(() => wrongWinnerDetails(this.sql))}`);
    const failedTx = [...this.producerOutputs()].reduce((n, out) => n + (out.match(/^failed /gm)?.length ?? 0), 0);
    if (failedTx > 0) this.notes.push(`${failedTx} producer transactions failed`);
    if (verdict.failuresSubscriptions > 0) this.notes.push(`history failures: ${verdict.forgotten} first-attempt successes left no row`);
    const errors = await retrying(() => attemptErrors(this.sql));
    if (errors) this.notes.push(`failed attempts: ${errors}`);
    const recoveries: Recovery[] = [];
    const broken: string[] = [];
    for (const point of this.recoveryPoints) {
      const times = await retrying(() => recoveryTimes(this.sql, point));
      // A worker that died (and was replaced) after the point has nothing to prove.
      for (const id of [...times.keys()]) if (this.died.has(id) && times.get(id) === null) times.delete(id);
      recoveries.push({ point, times });
      const problems = recoveryProblems(point, times);
      broken.push(...problems);
      // Diagnosable from the output alone: what each slow worker said around the point.
      for (const [worker, ms] of times) {
        if (ms !== null && ms <= point.boundMs && process.env.FAULTS_SHOW_RECOVERY !== '1') continue;
        const at = new Date(point.at).toISOString().slice(11, 23);
        const around = linesBetween(this.workerOutputs.get(worker)?.output() ?? '', point.at - 5000, point.at + point.boundMs + 5000);
        this.log(`  ${worker} ${ms !== null && ms <= point.boundMs ? 'kept' : 'missed'} the bound of ${point.label} (at ${at}); its log from 5 s before:\n${tail(around, 40)}`);
      }
      this.log(`  ${point.label}: ${[...times].map(([w, ms]) => `${w} ${ms === null ? 'never' : `${(ms / 1000).toFixed(1)} s`}`).join(', ')}`);
    }
    await this.proxy?.close();
    const staleAcksRefused = this.outputs.reduce(
      (n, child) => n + (child.output().match(/ack refused|finished after its lease was lost/g)?.length ?? 0),
      0,
    );
    await this.sql.end({ timeout: 1 });
    const admin = postgres(this.cluster.url(), { max: 1, onnotice: () => {} });
    await retrying(() => admin.unsafe(`DROP DATABASE IF EXISTS ${this.database} WITH (FORCE)`));
    await admin.end();
    const outputs = new Map([...this.workerOutputs].map(([id, child]) => [id, child.output()]));
    // Each child prints the postgres.js it resolved (faults/driver.mjs) before anything else: it must
    // be this process's. (A child killed before it printed anything did nothing.)
    const driverLine = `postgres.js ${process.env.CRIER_TEST_DRIVER_VERSION} (`;
    const otherDriver = process.env.CRIER_TEST_DRIVER_VERSION
      ? [...this.everyChild].filter(([, child]) => child.output() !== '' && !child.output().includes(driverLine)).map(([id]) => id)
      : [];
    return {
      verdict,
      faults: this.faults,
      crashes: this.crashes,
      postgresJsCrashes: this.postgresJsCrashes,
      producerCrashes: this.producerCrashes,
      staleAcksRefused,
      recoveryMs,
      recoveries,
      recoveryProblems: broken,
      outputs,
      proxied: this.proxied,
      drained,
      notes: this.notes,
      otherDriver,
    };
  }

  private *producerOutputs(): Iterable<string> {
    for (const child of this.outputs) if (/^ready\n(committed|failed|done)/m.test(child.output()) || /^(committed|failed) /m.test(child.output())) yield child.output();
  }

  /** Last lines of every worker's output, for a failed scenario's report. */
  workerLogs(): string {
    return this.outputs.map((c) => tail(c.output(), 8)).filter(Boolean).join('\n---\n');
  }
}

/** The lines of a worker's output stamped (faults/worker.ts) between two times (ms since the epoch, same UTC day). */
function linesBetween(output: string, from: number, to: number): string {
  const day = new Date(from).setUTCHours(0, 0, 0, 0);
  return output
    .split('\n')
    .filter((line) => {
      const m = /^\[\S+ (\d\d):(\d\d):(\d\d)\.(\d{3})\]/.exec(line);
      if (!m) return false;
      const at = day + ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000 + Number(m[4]);
      return at >= from && at <= to;
    })
    .join('\n');
}

function tail(output: string, lines = 15): string {
  return output.trimEnd().split('\n').slice(-lines).map((l) => `    ${l}`).join('\n');
}
