-- A cheaper fan-out: the common publish runs one statement inside the trigger instead of two plus a
-- function call.
--
-- Measured (docs/benchmarks.md, "Where crier loses time", item 5): the fan-out trigger took over
-- 40% of a publish's server CPU, and most of that went to executor start-up and planning, not to
-- the delivery rows (perf on the server backends under pgbench). crier.current_routes, a plpgsql
-- set-returning function called from the insert, was planned again on every call (its array
-- parameters never earned a generic plan). Now, when no subscription is ordered and every event's
-- topic has a route cached for the current epoch (any publish after a topic's first one), a single
-- statement reads the cached routes, inserts the deliveries and says whether a parked worker needs
-- waking. Anything else (a topic whose route must be resolved, an ordered subscription) takes the
-- general path, unchanged from 0007_route_cache_without_waits.
--
-- Same semantics as before: routes are only read, never written, on the common path (publishers
-- never wait on each other); wake-ups go through crier.wake_parked (0009: once per park). SECURITY
-- DEFINER and the fixed search_path are repeated, as 0006_roles asks.
CREATE OR REPLACE FUNCTION crier.fan_out() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_common boolean;
  v_wake text[];
  v_ordered boolean;
  v_parked boolean;
  v_topics text[];
  v_unrouted text[];
  v_pending text[];
  v_heads bigint[];
  v_head_subs text[];
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

  -- The general path, as in 0007: routes resolved where missing, ordered keys handled.
  SELECT array_agg(t.topic),
         array_agg(t.topic) FILTER (WHERE NOT EXISTS (
           SELECT 1 FROM crier.topic_routes r JOIN crier.route_epoch x ON x.epoch = r.epoch
           WHERE r.topic = t.topic)),
         EXISTS (SELECT 1 FROM crier.subscriptions WHERE ordered),
         EXISTS (SELECT 1 FROM crier.parked_workers)
  INTO v_topics, v_unrouted, v_ordered, v_parked
  FROM (SELECT DISTINCT e.topic FROM new_events e) t;

  IF NOT v_ordered THEN
    WITH inserted AS (
      INSERT INTO crier.deliveries (event_id, subscription, available_at)
      SELECT e.id, s.name, coalesce(e.deliver_at, now())
      FROM new_events e
      JOIN crier.current_routes(v_topics, v_unrouted) r ON r.topic = e.topic
      CROSS JOIN LATERAL unnest(r.subscriptions) AS s(name)
      ORDER BY e.id
      RETURNING subscription
    )
    SELECT array_agg(DISTINCT subscription) INTO v_pending FROM inserted;
  ELSE
    -- Ordered keys are locked in (subscription, key) order, so two producers cannot deadlock.
    WITH inserted AS (
      INSERT INTO crier.deliveries (event_id, subscription, state, available_at, ordering_key)
      SELECT e.id, s.name,
             CASE WHEN sub.ordered AND e.key IS NOT NULL THEN 'waiting' ELSE 'pending' END,
             coalesce(e.deliver_at, now()),
             CASE WHEN sub.ordered THEN e.key END
      FROM new_events e
      JOIN crier.current_routes(v_topics, v_unrouted) r ON r.topic = e.topic
      CROSS JOIN LATERAL unnest(r.subscriptions) AS s(name)
      JOIN crier.subscriptions sub ON sub.name = s.name
      ORDER BY e.id
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
  END IF;

  -- A key that was idle: its first new delivery is the head and claimable now.
  IF v_heads IS NOT NULL THEN
    UPDATE crier.deliveries SET state = 'pending' WHERE id = ANY (v_heads);
  END IF;

  IF v_parked THEN
    PERFORM crier.wake_parked(coalesce(v_pending, '{}') || coalesce(v_head_subs, '{}'));
  END IF;
  RETURN NULL;
END $$;
