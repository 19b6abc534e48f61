-- The worker protocol, reshaped by measurement (docs/performance.md):
-- * claim takes the previous batch's completions along (one round trip and one commit per batch
--   instead of two) and picks its rows into an array first, so the UPDATE and the join to events
--   are primary-key lookups whatever the statistics say (a hash join over the whole table was
--   chosen on a fresh table: 9 ms for 100 rows at 20k rows, growing with history);
-- * acks join their arrays to deliveries by primary key; the lease index no longer matches
--   "state = 'running'", which had made the planner loop over every running row per acked id.

DROP INDEX crier.deliveries_running_idx;
--> statement-breakpoint
CREATE INDEX deliveries_lease_idx ON crier.deliveries (locked_until) WHERE locked_until IS NOT NULL;
--> statement-breakpoint
DROP FUNCTION crier.claim(text, text, integer);
--> statement-breakpoint
-- Completes p_done (this worker's finished attempts; refused silently if their lease was lost,
-- as crier.complete does), then claims up to p_limit due deliveries of one subscription, oldest
-- first, with SKIP LOCKED. Each claim counts an attempt and takes a lease of lease_ms.
CREATE FUNCTION crier.claim(
  p_subscription text, p_worker text, p_limit integer,
  p_done_ids bigint[] DEFAULT '{}', p_done_attempts integer[] DEFAULT '{}'
)
RETURNS TABLE (
  delivery_id bigint, attempt integer, locked_until timestamptz,
  event_id bigint, event_uuid uuid, topic text, key text, payload jsonb, headers jsonb,
  created_at timestamptz
)
LANGUAGE plpgsql AS $$
DECLARE
  v_lease interval;
  v_paused boolean;
  v_ids bigint[];
BEGIN
  IF cardinality(p_done_ids) > 0 THEN
    PERFORM crier.complete(p_worker, p_done_ids, p_done_attempts);
  END IF;
  SELECT s.lease_ms * interval '1 millisecond', s.paused INTO v_lease, v_paused
  FROM crier.subscriptions s WHERE s.name = p_subscription;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'CRIER_UNKNOWN_SUBSCRIPTION: no subscription %', quote_literal(p_subscription)
      USING ERRCODE = 'P0002';
  END IF;
  IF v_paused OR p_limit < 1 THEN
    RETURN;
  END IF;

  v_ids := ARRAY(
    SELECT d.id FROM crier.deliveries d
    WHERE d.subscription = p_subscription AND d.state = 'pending' AND d.available_at <= now()
    ORDER BY d.available_at, d.id
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED);
  IF cardinality(v_ids) = 0 THEN
    RETURN;
  END IF;

  RETURN QUERY
  WITH claimed AS (
    UPDATE crier.deliveries d
    SET state = 'running', attempts = d.attempts + 1, worker = p_worker,
        locked_until = now() + v_lease, started_at = now(), updated_at = now()
    WHERE d.id = ANY(v_ids)
    RETURNING d.id, d.attempts, d.locked_until, d.event_id
  ), claimed_events AS (
    -- Primary-key lookups, not a join the planner may turn into a scan of the whole log.
    SELECT e.* FROM crier.events e WHERE e.id = ANY(ARRAY(SELECT c.event_id FROM claimed c))
  )
  SELECT c.id, c.attempts, c.locked_until, e.id, e.uuid, e.topic, e.key, e.payload, e.headers,
         e.created_at
  FROM claimed c JOIN claimed_events e ON e.id = c.event_id
  ORDER BY c.id;
END $$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION crier.complete(p_worker text, p_ids bigint[], p_attempts integer[])
RETURNS SETOF bigint
LANGUAGE sql AS $$
  UPDATE crier.deliveries d
  SET state = 'done', locked_until = NULL, finished_at = now(), updated_at = now()
  FROM unnest(p_ids, p_attempts) AS a(id, attempt)
  WHERE d.id = a.id AND d.attempts = a.attempt AND d.state = 'running' AND d.worker = p_worker
  RETURNING d.id
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION crier.fail(
  p_worker text, p_ids bigint[], p_attempts integer[], p_errors text[], p_stacks text[],
  p_give_up boolean[]
) RETURNS TABLE (delivery_id bigint, state text, available_at timestamptz)
LANGUAGE sql AS $$
  UPDATE crier.deliveries d
  SET state = CASE WHEN a.give_up OR d.attempts >= s.max_attempts THEN 'dead' ELSE 'pending' END,
      available_at = CASE WHEN a.give_up OR d.attempts >= s.max_attempts THEN d.available_at
                          ELSE now() + least(s.backoff_max_ms, s.backoff_base_ms * power(2, least(d.attempts - 1, 40)))
                                       * (0.5 + random() * 0.5) * interval '1 millisecond' END,
      locked_until = NULL,
      last_error = a.error,
      last_error_stack = a.stack,
      errors = d.errors || jsonb_build_object('attempt', d.attempts, 'at', now(), 'worker', p_worker, 'error', a.error),
      finished_at = CASE WHEN a.give_up OR d.attempts >= s.max_attempts THEN now() END,
      updated_at = now()
  FROM unnest(p_ids, p_attempts, p_errors, p_stacks, p_give_up) AS a(id, attempt, error, stack, give_up),
       crier.subscriptions s
  WHERE d.id = a.id AND d.attempts = a.attempt AND d.state = 'running' AND d.worker = p_worker
    AND s.name = d.subscription
  RETURNING d.id, d.state, d.available_at
$$;
--> statement-breakpoint
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
