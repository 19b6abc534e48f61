-- Fan-out: the deliveries of published events, and the one place deliveries are created.
--
-- crier.enqueue is the single path that inserts deliveries: fan-out (through the trigger below)
-- and replay (operator/replay.sql) both call it, so routing, per-key ordering (ordering.sql) and
-- wake-ups cannot diverge. Requeue creates no rows: it moves dead deliveries back, and the
-- ordering trigger queues them behind their key's head.

-- Creates the deliveries of the given events: to every subscription their topics route to, or only
-- to p_subscription when given (replay). For an ordered subscription, a delivery with a key starts
-- 'waiting' behind its key's head, and becomes the head (pending) when its key was idle; otherwise
-- it is pending at the event's deliver_at (now if none). Parked workers of the subscriptions that
-- got claimable deliveries are woken. Runs as its owner: publishers (through the trigger) and
-- operators (replay) need no rights on crier's internal tables. Generic plans only: with custom
-- plans Postgres planned the insert again on every call (p_subscription makes each custom plan
-- look cheaper than the generic one), which doubled the cost of a publish to an ordered
-- subscription (3.1 against 1.4 ms in a loop of 3,000 on a busy machine; 1.0 ms with this).
CREATE OR REPLACE FUNCTION crier.enqueue(p_event_ids bigint[], p_subscription text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_topics text[];
  v_unrouted text[];
  v_pending text[];
  v_heads bigint[];
  v_head_subs text[];
BEGIN
  IF p_subscription IS NULL THEN
    SELECT array_agg(t.topic),
           array_agg(t.topic) FILTER (WHERE NOT EXISTS (
             SELECT 1 FROM crier.topic_routes r JOIN crier.route_epoch x ON x.epoch = r.epoch
             WHERE r.topic = t.topic))
    INTO v_topics, v_unrouted
    FROM (SELECT DISTINCT e.topic FROM crier.events e WHERE e.id = ANY (p_event_ids)) t;
  END IF;

  -- Ordered keys are locked in (subscription, key) order, so two producers cannot deadlock.
  WITH targets AS (
    SELECT e.id, e.key, e.deliver_at, s.name AS subscription
    FROM crier.events e
    JOIN crier.current_routes(v_topics, v_unrouted) r ON r.topic = e.topic
    CROSS JOIN LATERAL unnest(r.subscriptions) AS s(name)
    WHERE e.id = ANY (p_event_ids) AND p_subscription IS NULL
    UNION ALL
    SELECT e.id, e.key, e.deliver_at, p_subscription
    FROM crier.events e
    WHERE e.id = ANY (p_event_ids) AND p_subscription IS NOT NULL
  ), inserted AS (
    INSERT INTO crier.deliveries (event_id, subscription, state, available_at, ordering_key)
    SELECT t.id, t.subscription,
           CASE WHEN sub.ordered AND t.key IS NOT NULL THEN 'waiting' ELSE 'pending' END,
           coalesce(t.deliver_at, now()),
           CASE WHEN sub.ordered THEN t.key END
    FROM targets t
    JOIN crier.subscriptions sub ON sub.name = t.subscription
    ORDER BY t.id
    RETURNING id, subscription, state, ordering_key
  ), heads AS (
    INSERT INTO crier.ordered_keys AS k (subscription, key, head_id)
    SELECT i.subscription, i.ordering_key, min(i.id) FROM inserted i
    WHERE i.state = 'waiting'
    GROUP BY i.subscription, i.ordering_key
    ORDER BY i.subscription, i.ordering_key
    ON CONFLICT (subscription, key) DO UPDATE SET head_id = k.head_id
    RETURNING k.subscription, k.head_id
  )
  SELECT (SELECT array_agg(DISTINCT subscription) FROM inserted WHERE state = 'pending'),
         (SELECT array_agg(h.head_id) FROM heads h JOIN inserted i ON i.id = h.head_id),
         (SELECT array_agg(DISTINCT h.subscription) FROM heads h JOIN inserted i ON i.id = h.head_id)
  INTO v_pending, v_heads, v_head_subs;

  -- A key that was idle: its first new delivery is the head and claimable now.
  IF v_heads IS NOT NULL THEN
    UPDATE crier.deliveries SET state = 'pending' WHERE id = ANY (v_heads);
  END IF;

  IF EXISTS (SELECT 1 FROM crier.parked_workers) THEN
    PERFORM crier.wake_parked(coalesce(v_pending, '{}') || coalesce(v_head_subs, '{}'));
  END IF;
END $$;

-- The fan-out trigger: one call per INSERT statement into crier.events, whatever its number of rows
-- (crier.publish, the library's INSERT, or a trigger on a business table).
--
-- The common publish (no subscription ordered, every topic's route cached for the current epoch:
-- any publish after a topic's first one) is one statement: it reads the cached routes, inserts the
-- deliveries and says whether a parked worker needs waking. It is crier.enqueue with nothing to
-- order and nothing to resolve, kept inline because this trigger is most of a publish's server CPU
-- and most of that was executor start-up and planning, not the rows (docs/benchmarks.md, "Where
-- crier loses time"). Routes are only read there, never written, so publishers never wait on each
-- other. Everything else goes through crier.enqueue.
CREATE OR REPLACE FUNCTION crier.fan_out() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_common boolean;
  v_wake text[];
BEGIN
  -- The common path, one statement. The statement's topics (usually one) are looked up in the
  -- route cache by index, whatever batch size the session's cached plan was made for, and joined
  -- back to the events; deliveries are inserted only when every event found its route and no
  -- subscription is ordered. The subscriptions to wake are the routes' (each just got a
  -- delivery), read only if a worker is parked.
  WITH routes AS MATERIALIZED (
    SELECT r.topic, r.subscriptions FROM crier.topic_routes r
    WHERE r.topic = ANY ((SELECT array_agg(DISTINCT e.topic) FROM new_events e)::text[])
      AND r.epoch = (SELECT x.epoch FROM crier.route_epoch x)
  ), routed AS MATERIALIZED (
    SELECT e.id, e.deliver_at, r.subscriptions
    FROM new_events e LEFT JOIN routes r ON r.topic = e.topic
  ), common AS MATERIALIZED (
    SELECT NOT EXISTS (SELECT 1 FROM crier.subscriptions s WHERE s.ordered)
       AND NOT EXISTS (SELECT 1 FROM routed r WHERE r.subscriptions IS NULL) AS yes
  ), inserted AS (
    INSERT INTO crier.deliveries (event_id, subscription, available_at)
    SELECT r.id, s.name, coalesce(r.deliver_at, now())
    FROM routed r
    CROSS JOIN LATERAL unnest(r.subscriptions) AS s(name)
    WHERE (SELECT c.yes FROM common c)
    ORDER BY r.id
  )
  SELECT c.yes,
         CASE WHEN c.yes AND EXISTS (SELECT 1 FROM crier.parked_workers)
              THEN (SELECT array_agg(DISTINCT s.name) FROM routed r CROSS JOIN LATERAL unnest(r.subscriptions) AS s(name)) END
  INTO v_common, v_wake
  FROM common c;

  IF v_common THEN
    IF v_wake IS NOT NULL THEN
      PERFORM crier.wake_parked(v_wake);
    END IF;
    RETURN NULL;
  END IF;

  PERFORM crier.enqueue(ARRAY(SELECT e.id FROM new_events e ORDER BY e.id));
  RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER events_fan_out AFTER INSERT ON crier.events
REFERENCING NEW TABLE AS new_events
FOR EACH STATEMENT EXECUTE FUNCTION crier.fan_out();
