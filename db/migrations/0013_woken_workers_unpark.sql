-- A woken worker is unparked by the producer that wakes it: its parked row is deleted rather than
-- marked notified.
--
-- Measured (bench/pgbench/server-cpu.py, 8 clients, single-event publishes, 3 rounds of 8 s, machine
-- shared): with 0009's marks, while a worker is awake its row stays, marked, so every publish sees a
-- parked worker and calls crier.wake_parked, which finds nothing to do: 762 µs of server CPU per
-- publish (648–814) against 616 (462–660) with no row at all. Without the row, the fan-out's
-- EXISTS over crier.parked_workers is false and nothing is called. The guarantees stay as in 0009:
-- publishers that do not yet see the first one's delete committed notify too (no wake-up is lost),
-- none waits for another, and the worker parks again (a new row), always followed by one more claim.
CREATE OR REPLACE FUNCTION crier.park(p_worker text, p_subscriptions text[]) RETURNS void
LANGUAGE sql AS $$
  DELETE FROM crier.parked_workers WHERE since < now() - interval '2 minutes';
  INSERT INTO crier.parked_workers (subscription, worker)
  SELECT s, p_worker FROM unnest(p_subscriptions) s
  ON CONFLICT (subscription, worker) DO UPDATE SET since = now();
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION crier.wake_parked(p_subscriptions text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_wake text[];
BEGIN
  SELECT array_agg(DISTINCT p.subscription) INTO v_wake
  FROM crier.parked_workers p WHERE p.subscription = ANY (p_subscriptions);
  IF v_wake IS NULL THEN
    RETURN;
  END IF;
  -- Rows another publisher is deleting are skipped, never waited for (publishers must not wait on
  -- each other's business transactions); both notify.
  DELETE FROM crier.parked_workers p
  WHERE (p.subscription, p.worker) IN (
    SELECT q.subscription, q.worker FROM crier.parked_workers q
    WHERE q.subscription = ANY (v_wake)
    FOR UPDATE SKIP LOCKED);
  PERFORM crier.wake(v_wake);
END $$;
--> statement-breakpoint
ALTER TABLE "crier"."parked_workers" DROP COLUMN "notified";
