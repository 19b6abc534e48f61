-- Waking workers. An idle worker parks (a row in crier.parked_workers) and LISTENs on the 'crier'
-- channel; whoever makes a delivery claimable for a parked subscription notifies it. The payload
-- names subscriptions, never an event.

-- Wakes parked workers: the payload names subscriptions (never an event), '*' when too many.
CREATE OR REPLACE FUNCTION crier.wake(p_subscriptions text[]) RETURNS void
LANGUAGE sql AS $$
  SELECT pg_notify('crier', CASE WHEN length(names) <= 1000 THEN names ELSE '*' END)
  FROM (SELECT string_agg(DISTINCT s, ' ') AS names FROM unnest(p_subscriptions) s) w
  WHERE names IS NOT NULL
$$;

-- Wakes the parked workers of these subscriptions, and unparks them: the producer that wakes a
-- worker deletes its parked row (a worker that is awake has no row, so the fan-out's EXISTS over
-- crier.parked_workers stays false and costs publishers nothing: measured 616 µs of server CPU per
-- publish against 762 when woken rows stayed, marked, bench/pgbench/server-cpu.py). Publishers that
-- do not yet see another's delete committed notify too, so no wake-up is lost; the worker parks
-- again (a new row) and always claims once more after parking.
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

-- A worker that found nothing to claim parks, so that producers know to wake it. Parking again
-- refreshes the row; rows of workers that vanished without unparking expire after two minutes.
CREATE OR REPLACE FUNCTION crier.park(p_worker text, p_subscriptions text[]) RETURNS void
LANGUAGE sql AS $$
  DELETE FROM crier.parked_workers WHERE since < now() - interval '2 minutes';
  INSERT INTO crier.parked_workers (subscription, worker)
  SELECT s, p_worker FROM unnest(p_subscriptions) s
  ON CONFLICT (subscription, worker) DO UPDATE SET since = now();
$$;

CREATE OR REPLACE FUNCTION crier.unpark(p_worker text, p_subscriptions text[]) RETURNS void
LANGUAGE sql AS $$
  DELETE FROM crier.parked_workers WHERE worker = p_worker AND subscription = ANY (p_subscriptions);
$$;
