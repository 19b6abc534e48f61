-- Leases: a claimed delivery is leased for its subscription's lease_ms. A worker renews the leases
-- it holds, hands them back on shutdown, and anyone may rescue the deliveries whose lease ran out.

-- Heartbeat: renews the leases this worker still holds; returns the ids it still holds. It also
-- says the worker is alive (crier.registered_workers, workers.sql): a worker heartbeats while idle
-- too (with no ids), and that one round trip is all its registration costs.
CREATE OR REPLACE FUNCTION crier.extend_leases(p_worker text, p_ids bigint[], p_attempts integer[])
RETURNS SETOF bigint
LANGUAGE sql AS $$
  WITH seen AS (
    UPDATE crier.registered_workers SET last_seen_at = now() WHERE id = p_worker AND stopped_at IS NULL
  )
  UPDATE crier.deliveries d
  SET locked_until = now() + s.lease_ms * interval '1 millisecond', updated_at = now()
  FROM unnest(p_ids, p_attempts) AS a(id, attempt), crier.subscriptions s
  WHERE d.id = a.id AND d.attempts = a.attempt AND d.state = 'running' AND d.worker = p_worker
    AND s.name = d.subscription
  RETURNING d.id
$$;

-- Graceful shutdown: hands unfinished deliveries back without counting the attempt.
CREATE OR REPLACE FUNCTION crier.release(p_worker text, p_ids bigint[], p_attempts integer[])
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_released bigint[];
  v_subs text[];
BEGIN
  WITH released AS (
    UPDATE crier.deliveries d
    SET state = 'pending', attempts = d.attempts - 1, worker = NULL, locked_until = NULL,
        started_at = NULL, available_at = now(), updated_at = now()
    FROM unnest(p_ids, p_attempts) AS a(id, attempt)
    WHERE d.id = a.id AND d.attempts = a.attempt AND d.state = 'running' AND d.worker = p_worker
    RETURNING d.id, d.subscription
  )
  SELECT array_agg(id), array_agg(DISTINCT subscription) INTO v_released, v_subs FROM released;
  IF v_subs IS NOT NULL THEN
    PERFORM crier.wake(v_subs);
  END IF;
  RETURN QUERY SELECT unnest(coalesce(v_released, '{}'));
END $$;

-- Brings back deliveries whose lease ran out (their worker crashed, hung or lost its connection).
-- The lost attempt counts: a delivery that keeps killing its workers ends dead, not in a loop.
CREATE OR REPLACE FUNCTION crier.rescue_expired(p_limit integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_ids bigint[];
  v_count integer;
  v_wake text[];
BEGIN
  v_ids := ARRAY(
    SELECT d.id FROM crier.deliveries d
    WHERE d.locked_until < now() AND d.state = 'running'
    ORDER BY d.locked_until
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED);
  IF cardinality(v_ids) = 0 THEN
    RETURN 0;
  END IF;
  WITH rescued AS (
    UPDATE crier.deliveries d
    SET state = CASE WHEN d.attempts >= s.max_attempts THEN 'dead' ELSE 'pending' END,
        available_at = now(),
        locked_until = NULL,
        last_error = format('lease expired: worker %s did not finish attempt %s in time (crashed, hung or cut off)',
                            d.worker, d.attempts),
        last_error_stack = NULL,
        errors = d.errors || jsonb_build_object('attempt', d.attempts, 'at', now(), 'worker', d.worker,
                                                'error', 'lease expired'),
        finished_at = CASE WHEN d.attempts >= s.max_attempts THEN now() END,
        updated_at = now()
    FROM crier.subscriptions s
    WHERE d.id = ANY(v_ids) AND s.name = d.subscription
      AND d.state = 'running' AND d.locked_until < now()
    RETURNING d.subscription, d.state
  )
  SELECT count(*), array_agg(DISTINCT subscription) FILTER (WHERE state = 'pending')
  INTO v_count, v_wake
  FROM rescued;
  IF v_wake IS NOT NULL THEN
    PERFORM crier.wake(v_wake);
  END IF;
  RETURN v_count;
END $$;
