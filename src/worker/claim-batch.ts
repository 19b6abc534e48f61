// Claims of several subscriptions of one worker in one round trip. Each subscription's scheduler
// asks for its claims as before (Protocol.claim, Protocol.claimOrIdle). A request goes out at once,
// alone, while fewer claims than the worker's round-trip connections are on their way; one that
// comes while they are all busy waits, and the requests that waited go together in one round trip
// (crier.claim_many) as soon as a claim comes back. So an idle worker's claims are exactly what they
// were, and under load one round trip carries the claims of every subscription with work: with 25
// subscriptions on two connections, claims never queue one behind the other.
// It never retries: a failed round trip fails each of its requests (their schedulers back off and
// take back their completions). Except one case: an unknown subscription (removed from the
// database) fails the whole call, so its requests are sent again one by one, and only the removed
// subscription's scheduler hears of it.
import type { Completions } from './protocol.ts';

export interface ClaimRequest {
  subscription: string;
  limit: number;
  done: Completions;
  /** null: a plain claim; else claim_or_idle's park flag. */
  park: boolean | null;
  /** claim_or_idle's running transactions (the text of a bigint[]), for a re-check. */
  running: string | null;
}

interface Waiting<R> {
  request: ClaimRequest;
  resolve: (reply: R) => void;
  reject: (error: unknown) => void;
}

/** The SQL error crier.claim raises for a subscription that is not in the database. */
const unknownSubscription = 'P0002';

export class ClaimBatcher<R> {
  private inFlight = 0;
  private waiting: Waiting<R>[] = [];

  constructor(
    /** Claims on their way at once before requests wait and go together. */
    private readonly maxInFlight: number,
    private readonly alone: (request: ClaimRequest) => Promise<R>,
    private readonly together: (requests: ClaimRequest[]) => Promise<R[]>,
  ) {}

  claim(request: ClaimRequest): Promise<R> {
    if (this.inFlight < this.maxInFlight) return this.send(this.alone(request));
    return new Promise<R>((resolve, reject) => this.waiting.push({ request, resolve, reject }));
  }

  /** Counts `pending` among the claims on their way; when it is back, sends what waited. */
  private send<T>(pending: Promise<T>): Promise<T> {
    this.inFlight++;
    return pending.finally(() => {
      this.inFlight--;
      this.flush();
    });
  }

  private flush(): void {
    if (this.waiting.length === 0 || this.inFlight >= this.maxInFlight) return;
    const batch = this.waiting;
    this.waiting = [];
    if (batch.length === 1) {
      const [{ request, resolve, reject }] = batch as [Waiting<R>];
      this.send(this.alone(request)).then(resolve, reject);
      return;
    }
    this.send(this.together(batch.map((w) => w.request))).then(
      (replies) => batch.forEach((w, i) => w.resolve(replies[i]!)),
      (error: unknown) => {
        if ((error as { code?: unknown } | null)?.code !== unknownSubscription) {
          for (const w of batch) w.reject(error);
          return;
        }
        for (const w of batch) this.send(this.alone(w.request)).then(w.resolve, w.reject);
      },
    );
  }
}
