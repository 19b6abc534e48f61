-- Dead letters: finding them and moving them back to pending (`crier dead`, `crier requeue`).

-- The dead deliveries matching every given filter (NULL = no filter); since/until bound the time
-- the delivery died, error is a case-insensitive substring of the last error. A plain SQL function,
-- so the planner inlines it and ORDER BY / LIMIT reach the indexes.
CREATE OR REPLACE FUNCTION crier.find_dead(
  p_subscription text DEFAULT NULL,
  p_topic text DEFAULT NULL,
  p_error text DEFAULT NULL,
  p_since timestamptz DEFAULT NULL,
  p_until timestamptz DEFAULT NULL,
  p_delivery_ids bigint[] DEFAULT NULL,
  p_event_ids bigint[] DEFAULT NULL
) RETURNS SETOF crier.dead_letters
LANGUAGE sql STABLE AS $$
  SELECT * FROM crier.dead_letters f
  WHERE (p_subscription IS NULL OR f.subscription = p_subscription)
    AND (p_topic IS NULL OR crier.topic_matches(f.topic, p_topic))
    AND (p_error IS NULL OR strpos(lower(coalesce(f.last_error, '')), lower(p_error)) > 0)
    AND (p_since IS NULL OR f.died_at >= p_since)
    AND (p_until IS NULL OR f.died_at < p_until)
    AND (p_delivery_ids IS NULL OR f.delivery_id = ANY (p_delivery_ids))
    AND (p_event_ids IS NULL OR f.event_id = ANY (p_event_ids))
$$;

-- Moves dead deliveries back to pending: attempts reset, due now, the subscription's policies
-- unchanged (they live on the subscription). Only rows still dead are updated, and workers never
-- write dead rows, so it is safe while workers run and two operators cannot requeue a row twice.
-- The error history is kept, with a note of the requeue. Returns the deliveries moved (or, with
-- p_dry_run, that would move), in id order, at most p_limit of them: callers with many rows loop
-- with p_after_id = the last id returned until none come back, one short transaction per batch (a
-- delivery that dies again meanwhile has an id already passed, so it is not requeued in a loop).
--   select * from crier.requeue(p_subscription => 'billing', p_error => 'timeout');
--   select count(*) from crier.requeue(p_all_dead => true);
CREATE OR REPLACE FUNCTION crier.requeue(
  p_delivery_ids bigint[] DEFAULT NULL,
  p_subscription text DEFAULT NULL,
  p_topic text DEFAULT NULL,
  p_error text DEFAULT NULL,
  p_since timestamptz DEFAULT NULL,
  p_until timestamptz DEFAULT NULL,
  p_all_dead boolean DEFAULT false,
  p_dry_run boolean DEFAULT false,
  p_limit integer DEFAULT NULL,
  p_event_ids bigint[] DEFAULT NULL,
  p_after_id bigint DEFAULT NULL
) RETURNS TABLE (delivery_id bigint, event_id bigint, subscription text, topic text, last_error text)
LANGUAGE plpgsql AS $$
DECLARE
  v_filtered boolean := p_delivery_ids IS NOT NULL OR p_event_ids IS NOT NULL OR p_subscription IS NOT NULL
    OR p_topic IS NOT NULL OR p_error IS NOT NULL OR p_since IS NOT NULL OR p_until IS NOT NULL;
  v_missing text;
  v_ids bigint[];
  v_events bigint[];
  v_subs text[];
  v_errors text[];
BEGIN
  IF NOT v_filtered AND NOT coalesce(p_all_dead, false) THEN
    RAISE EXCEPTION 'CRIER_INVALID_OPTION: requeue needs delivery ids, event ids, a filter (subscription, topic, error, since, until) or p_all_dead => true'
      USING ERRCODE = '22023';
  END IF;
  IF v_filtered AND coalesce(p_all_dead, false) THEN
    RAISE EXCEPTION 'CRIER_INVALID_OPTION: p_all_dead requeues every dead delivery and cannot be combined with ids or filters'
      USING ERRCODE = '22023';
  END IF;
  IF p_limit IS NOT NULL AND p_limit < 1 THEN
    RAISE EXCEPTION 'CRIER_INVALID_OPTION: p_limit must be at least 1, got %', p_limit USING ERRCODE = '22023';
  END IF;
  IF p_subscription IS NOT NULL THEN
    PERFORM crier.assert_subscription(p_subscription);
  END IF;
  PERFORM crier.assert_pattern(p_topic);
  SELECT string_agg(i::text, ', ') INTO v_missing FROM unnest(p_delivery_ids) i
  WHERE NOT EXISTS (SELECT 1 FROM crier.deliveries d WHERE d.id = i);
  IF v_missing IS NOT NULL THEN
    RAISE EXCEPTION 'CRIER_UNKNOWN_DELIVERY: no delivery %', v_missing USING ERRCODE = 'P0002';
  END IF;
  SELECT string_agg(i::text, ', ') INTO v_missing FROM unnest(p_event_ids) i
  WHERE NOT EXISTS (SELECT 1 FROM crier.events e WHERE e.id = i);
  IF v_missing IS NOT NULL THEN
    RAISE EXCEPTION 'CRIER_UNKNOWN_EVENT: no event %', v_missing USING ERRCODE = 'P0002';
  END IF;

  IF p_dry_run THEN
    RETURN QUERY
    SELECT f.delivery_id, f.event_id, f.subscription, f.topic, f.last_error
    FROM crier.find_dead(p_subscription, p_topic, p_error, p_since, p_until, p_delivery_ids, p_event_ids) f
    WHERE p_after_id IS NULL OR f.delivery_id > p_after_id
    ORDER BY f.delivery_id
    LIMIT p_limit;
    RETURN;
  END IF;

  WITH picked AS (
    SELECT f.delivery_id FROM crier.find_dead(p_subscription, p_topic, p_error, p_since, p_until, p_delivery_ids, p_event_ids) f
    WHERE p_after_id IS NULL OR f.delivery_id > p_after_id
    ORDER BY f.delivery_id
    LIMIT p_limit
  ), moved AS (
    UPDATE crier.deliveries d
    SET state = 'pending', attempts = 0, available_at = now(), worker = NULL, locked_until = NULL,
        started_at = NULL, finished_at = NULL, updated_at = now(),
        errors = d.errors || jsonb_build_object('at', now(), 'requeued_by', current_user,
                                                'attempts_before', d.attempts)
    FROM picked
    WHERE d.id = picked.delivery_id AND d.state = 'dead'
    RETURNING d.id, d.event_id, d.subscription, d.last_error
  )
  SELECT array_agg(m.id ORDER BY m.id), array_agg(m.event_id ORDER BY m.id),
         array_agg(m.subscription ORDER BY m.id), array_agg(m.last_error ORDER BY m.id)
  INTO v_ids, v_events, v_subs, v_errors
  FROM moved m;

  IF v_ids IS NOT NULL THEN
    PERFORM crier.wake(v_subs);
  END IF;
  RETURN QUERY
  SELECT u.id, u.event_id, u.subscription, e.topic, u.last_error
  FROM unnest(v_ids, v_events, v_subs, v_errors) AS u(id, event_id, subscription, last_error)
  JOIN crier.events e ON e.id = u.event_id
  ORDER BY u.id;
END $$;
