-- A parked worker is notified once, not once per publish.
--
-- Measured (bench/src/probes/publish-wakeups.ts, 3,000 single-event transactions, 8 in flight): with
-- a worker that keeps up, every publish sent a NOTIFY (3,000 for 3,000 events), and each NOTIFY
-- takes Postgres's commit-time notification lock: 696 publishes/s against 2,220 with no worker.
-- Now the first publisher to wake a parked worker marks its row notified; publishers that see a
-- committed mark know the worker is already awake and skip the NOTIFY. The worker clears the mark
-- when it parks again, always followed by one more claim, so no event is left waiting.

ALTER TABLE crier.parked_workers ADD COLUMN notified boolean NOT NULL DEFAULT false;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION crier.park(p_worker text, p_subscriptions text[]) RETURNS void
LANGUAGE sql AS $$
  DELETE FROM crier.parked_workers WHERE since < now() - interval '2 minutes';
  INSERT INTO crier.parked_workers (subscription, worker)
  SELECT s, p_worker FROM unnest(p_subscriptions) s
  ON CONFLICT (subscription, worker) DO UPDATE SET since = now(), notified = false;
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION crier.wake_parked(p_subscriptions text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_wake text[];
BEGIN
  -- Whoever this transaction does not see as notified yet is notified: a mark that another
  -- publisher has not committed yet proves nothing, so no wake-up is ever lost.
  SELECT array_agg(DISTINCT p.subscription) INTO v_wake
  FROM crier.parked_workers p
  WHERE p.subscription = ANY (p_subscriptions) AND NOT p.notified;
  IF v_wake IS NULL THEN
    RETURN;
  END IF;
  -- Marking is best effort: rows another publisher is marking are skipped, never waited for
  -- (publishers must not wait on each other's business transactions).
  UPDATE crier.parked_workers p SET notified = true
  WHERE (p.subscription, p.worker) IN (
    SELECT q.subscription, q.worker FROM crier.parked_workers q
    WHERE q.subscription = ANY (v_wake) AND NOT q.notified
    FOR UPDATE SKIP LOCKED);
  PERFORM crier.wake(v_wake);
END $$;
