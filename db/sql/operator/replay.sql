-- Replay: queues past events again for one subscription (to rebuild a projection, or after a bug
-- fix): the events in the id and time range that match the subscription's own patterns (and
-- p_topic, when given). An event whose earlier delivery to this subscription is still waiting,
-- pending or running is skipped, so it is never queued twice at once; an advisory lock makes
-- concurrent replays of one subscription take turns. A replayed event gets a new delivery row, so
-- history keeps both (a subscription with history 'failures' keeps neither when both succeeded at
-- their first attempt: replay reads the log, never the deliveries kept); it is created by crier.enqueue (fan_out.sql) like any delivery, so an ordered
-- subscription gets replayed events of one key one at a time, in event order, behind its live ones.
-- Returns one row per event examined (queued = false: skipped), at most p_limit of them, in id order:
-- callers with a large range loop from the last id returned.
--   select count(*) filter (where queued) from crier.replay('projection', p_from_time => now() - interval '7 days');
CREATE OR REPLACE FUNCTION crier.replay(
  p_subscription text,
  p_from_id bigint DEFAULT NULL,
  p_to_id bigint DEFAULT NULL,
  p_from_time timestamptz DEFAULT NULL,
  p_to_time timestamptz DEFAULT NULL,
  p_topic text DEFAULT NULL,
  p_dry_run boolean DEFAULT false,
  p_limit integer DEFAULT NULL
) RETURNS TABLE (event_id bigint, topic text, queued boolean)
LANGUAGE plpgsql AS $$
DECLARE
  v_patterns text[];
  v_ids bigint[];
  v_topics text[];
  v_free boolean[];
BEGIN
  SELECT s.topics INTO v_patterns FROM crier.subscriptions s WHERE s.name = p_subscription;
  IF NOT FOUND THEN
    PERFORM crier.assert_subscription(p_subscription);
  END IF;
  IF p_from_id IS NULL AND p_from_time IS NULL THEN
    RAISE EXCEPTION 'CRIER_INVALID_OPTION: replay needs a starting point: p_from_id or p_from_time'
      USING ERRCODE = '22023';
  END IF;
  IF p_limit IS NOT NULL AND p_limit < 1 THEN
    RAISE EXCEPTION 'CRIER_INVALID_OPTION: p_limit must be at least 1, got %', p_limit USING ERRCODE = '22023';
  END IF;
  PERFORM crier.assert_pattern(p_topic);
  IF NOT p_dry_run THEN
    PERFORM pg_advisory_xact_lock(hashtext('crier.replay'), hashtext(p_subscription));
  END IF;

  WITH candidates AS (
    SELECT e.id, e.topic FROM crier.events e
    WHERE (p_from_id IS NULL OR e.id >= p_from_id)
      AND (p_to_id IS NULL OR e.id <= p_to_id)
      AND (p_from_time IS NULL OR e.created_at >= p_from_time)
      AND (p_to_time IS NULL OR e.created_at <= p_to_time)
      AND EXISTS (SELECT 1 FROM unnest(v_patterns) p WHERE crier.topic_matches(e.topic, p))
      AND (p_topic IS NULL OR crier.topic_matches(e.topic, p_topic))
    ORDER BY e.id
    LIMIT p_limit
  ), examined AS (
    SELECT c.id, c.topic, NOT EXISTS (
             SELECT 1 FROM crier.deliveries d
             WHERE d.event_id = c.id AND d.subscription = p_subscription
               AND d.state IN ('waiting', 'pending', 'running')
           ) AS free
    FROM candidates c
  )
  SELECT array_agg(x.id ORDER BY x.id), array_agg(x.topic ORDER BY x.id), array_agg(x.free ORDER BY x.id)
  INTO v_ids, v_topics, v_free
  FROM examined x;

  IF NOT p_dry_run AND true = ANY (v_free) THEN
    PERFORM crier.enqueue(ARRAY(SELECT u.id FROM unnest(v_ids, v_free) AS u(id, free) WHERE u.free),
                          p_subscription);
  END IF;
  RETURN QUERY
  SELECT u.id, u.topic, u.free FROM unnest(v_ids, v_topics, v_free) AS u(id, topic, free) ORDER BY u.id;
END $$;
