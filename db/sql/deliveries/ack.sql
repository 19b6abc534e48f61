-- Acknowledgements: a handler's outcome, written only by the attempt that holds the lease (the
-- (worker, attempt) guard refuses an ack from a worker whose lease expired and whose delivery was
-- claimed again). Acks join their arrays to deliveries by primary key. When some subscription is
-- ordered they first lock the acked deliveries' keys (crier.lock_ordered_keys, ordering.sql), in the
-- order producers lock them. Transactional handlers run crier.complete inside their own transaction.

-- Marks deliveries done; returns the ids that were completed. A subscription with history
-- 'failures' keeps no row for a delivery that never failed: one that succeeds at its first attempt
-- with nothing in its errors (a failed attempt, an expired lease and a requeue each add an entry
-- there) is deleted instead, and its id returned all the same. Its key, if ordered, moves on
-- through the delete trigger of ordering.sql. The list of such subscriptions is read once per call:
-- while it is empty (every subscription keeps full history) the DELETE is switched off by a one-time
-- filter, so the ack costs what it always did: primary-key lookups and one UPDATE.
CREATE OR REPLACE FUNCTION crier.complete(p_worker text, p_ids bigint[], p_attempts integer[])
RETURNS SETOF bigint
LANGUAGE sql AS $$
  SELECT crier.lock_ordered_keys(p_ids) WHERE EXISTS (SELECT 1 FROM crier.subscriptions WHERE ordered);
  WITH forget AS (
    SELECT coalesce(array_agg(s.name), '{}') AS names FROM crier.subscriptions s WHERE s.history = 'failures'
  ), done AS (
    UPDATE crier.deliveries d
    SET state = 'done', locked_until = NULL, finished_at = now(), updated_at = now()
    FROM unnest(p_ids, p_attempts) AS a(id, attempt)
    WHERE d.id = a.id AND d.attempts = a.attempt AND d.state = 'running' AND d.worker = p_worker
      AND NOT (d.subscription = ANY ((SELECT f.names FROM forget f)::text[]) AND d.attempts = 1 AND d.errors = '[]')
    RETURNING d.id
  ), forgotten AS (
    DELETE FROM crier.deliveries d
    USING unnest(p_ids, p_attempts) AS a(id, attempt)
    WHERE cardinality((SELECT f.names FROM forget f)) > 0
      AND d.id = a.id AND d.attempts = a.attempt AND d.state = 'running' AND d.worker = p_worker
      AND d.subscription = ANY ((SELECT f.names FROM forget f)::text[]) AND d.attempts = 1 AND d.errors = '[]'
    RETURNING d.id
  )
  SELECT id FROM done UNION ALL SELECT id FROM forgotten
$$;

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
