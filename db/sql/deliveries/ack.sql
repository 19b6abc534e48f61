-- Acknowledgements: a handler's outcome, written only by the attempt that holds the lease (the
-- (worker, attempt) guard refuses an ack from a worker whose lease expired and whose delivery was
-- claimed again). Acks join their arrays to deliveries by primary key. When some subscription is
-- ordered they first lock the acked deliveries' keys (crier.lock_ordered_keys, ordering.sql), in the
-- order producers lock them. Transactional handlers run crier.complete inside their own transaction.

-- Marks deliveries done; returns the ids that were completed. A subscription with history
-- 'failures' keeps no row of a delivery that never failed: one that succeeds at its first attempt
-- with nothing in its errors (a failed attempt, an expired lease and a requeue each add an entry
-- there) is deleted instead, first, and its id returned all the same; its key, if ordered, moves on
-- through the delete trigger of ordering.sql. The UPDATE then finds only the rest. While no
-- subscription keeps 'failures' the DELETE is skipped, and the ack is the one UPDATE by primary key
-- it always was. plpgsql, so that its plans are kept for the session (as a SQL function every call
-- planned every statement again: with the DELETE, +0.2 ms a call, +60% for a 10-row ack), and
-- generic plans only: a custom plan sees the real size of p_ids and, under statistics that say no
-- delivery is running, scans the table (test/query-plans.test.ts); the generic plan, like the SQL
-- function's, looks the rows up by primary key. Measured on the 2-core machine, server side, acks
-- of 10/200/500 deliveries under 'full': 0.22/2.0/4.3 ms against 0.37/2.3/4.7 ms for the SQL function
-- of before; under 'failures' (all deleted) 0.17/1.0 ms for 10/200.
CREATE OR REPLACE FUNCTION crier.complete(p_worker text, p_ids bigint[], p_attempts integer[])
RETURNS SETOF bigint
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM crier.subscriptions WHERE ordered) THEN
    PERFORM crier.lock_ordered_keys(p_ids);
  END IF;
  IF EXISTS (SELECT 1 FROM crier.subscriptions WHERE history = 'failures') THEN
    RETURN QUERY
    DELETE FROM crier.deliveries d
    USING unnest(p_ids, p_attempts) AS a(id, attempt), crier.subscriptions s
    WHERE d.id = a.id AND d.attempts = a.attempt AND d.state = 'running' AND d.worker = p_worker
      AND d.attempts = 1 AND d.errors = '[]' AND s.name = d.subscription AND s.history = 'failures'
    RETURNING d.id;
  END IF;
  RETURN QUERY
  UPDATE crier.deliveries d
  SET state = 'done', locked_until = NULL, finished_at = now(), updated_at = now()
  FROM unnest(p_ids, p_attempts) AS a(id, attempt)
  WHERE d.id = a.id AND d.attempts = a.attempt AND d.state = 'running' AND d.worker = p_worker
  RETURNING d.id;
END $$;

-- Records failed attempts: back to pending when due again, or dead when the attempts are used up or
-- p_give_up says retrying cannot help. The delay is the handler's or the subscription's schedule
-- (p_delays_ms, computed by the worker; NULL for a delivery, or the whole array, means the
-- subscription's backoff: exponential, capped, with jitter). Returns each delivery's new state and
-- when it is due again.
-- The signature gained p_delays_ms: drop the six-argument form a database may still have.
DROP FUNCTION IF EXISTS crier.fail(text, bigint[], integer[], text[], text[], boolean[]);
CREATE OR REPLACE FUNCTION crier.fail(
  p_worker text, p_ids bigint[], p_attempts integer[], p_errors text[], p_stacks text[],
  p_give_up boolean[], p_delays_ms integer[] DEFAULT NULL
) RETURNS TABLE (delivery_id bigint, state text, available_at timestamptz)
LANGUAGE sql AS $$
  SELECT crier.lock_ordered_keys(p_ids);
  UPDATE crier.deliveries d
  SET state = CASE WHEN a.give_up OR d.attempts >= s.max_attempts THEN 'dead' ELSE 'pending' END,
      available_at = CASE WHEN a.give_up OR d.attempts >= s.max_attempts THEN d.available_at
                          ELSE now() + greatest(0, coalesce(
                                         a.delay_ms::double precision,
                                         least(s.backoff_max_ms, s.backoff_base_ms * power(2, least(d.attempts - 1, 40)))
                                           * (0.5 + random() * 0.5)
                                       )) * interval '1 millisecond' END,
      locked_until = NULL,
      last_error = a.error,
      last_error_stack = a.stack,
      errors = d.errors || jsonb_build_object('attempt', d.attempts, 'at', now(), 'worker', p_worker, 'error', a.error),
      finished_at = CASE WHEN a.give_up OR d.attempts >= s.max_attempts THEN now() END,
      updated_at = now()
  FROM unnest(p_ids, p_attempts, p_errors, p_stacks, p_give_up, coalesce(p_delays_ms, '{}'))
         AS a(id, attempt, error, stack, give_up, delay_ms),
       crier.subscriptions s
  WHERE d.id = a.id AND d.attempts = a.attempt AND d.state = 'running' AND d.worker = p_worker
    AND s.name = d.subscription
  RETURNING d.id, d.state, d.available_at
$$;
