-- Publishers never wait on each other for the route cache.
--
-- Until now the first publisher of a topic (after any subscription change) wrote its route row
-- inside its own business transaction and held that row lock until it committed: other publishers
-- of the topic waited for it, and two transactions publishing two such topics in opposite orders
-- deadlocked (test/publish.test.ts, "concurrent publishers"). Routes are now computed where needed
-- and cached only under a try-lock; a publisher that cannot cache simply matches patterns itself.

DROP FUNCTION crier.resolve_routes(text[]);
--> statement-breakpoint
-- Matches the given topics against every subscription and returns their routes. It also caches
-- them, but only for topics no other open transaction is caching right now (a try-lock, never a
-- wait): the cache row stays locked until the publisher commits, and publishers must never wait
-- on each other's business transactions or deadlock over route rows. Rows written from an older
-- snapshot carry an older epoch and are simply resolved again later.
CREATE FUNCTION crier.resolve_routes(p_topics text[])
RETURNS TABLE (topic text, subscriptions text[])
LANGUAGE sql AS $$
  WITH resolved AS (
    SELECT t.topic,
           coalesce(array_agg(s.name ORDER BY s.name) FILTER (WHERE s.name IS NOT NULL), '{}') AS subscriptions
    FROM unnest(p_topics) AS t(topic)
    LEFT JOIN crier.subscriptions s
      ON EXISTS (SELECT 1 FROM unnest(s.topics) p WHERE crier.topic_matches(t.topic, p))
    GROUP BY t.topic
  ), cached AS (
    INSERT INTO crier.topic_routes (topic, subscriptions, epoch)
    SELECT r.topic, r.subscriptions, (SELECT epoch FROM crier.route_epoch)
    FROM resolved r
    WHERE pg_try_advisory_xact_lock(hashtext('crier.topic_routes'), hashtext(r.topic))
    ON CONFLICT (topic) DO UPDATE
      SET subscriptions = excluded.subscriptions, epoch = excluded.epoch
      WHERE crier.topic_routes.epoch < excluded.epoch
  )
  SELECT r.topic, r.subscriptions FROM resolved r
$$;

--> statement-breakpoint
-- The routes of the given topics: cached rows for the routed ones, freshly resolved for the rest.
-- plpgsql rather than sql: its plans are kept for the session (a non-inlined SQL function is
-- planned on every call, which cost publishing about a third of its rate).
CREATE FUNCTION crier.current_routes(p_topics text[], p_unrouted text[])
RETURNS TABLE (topic text, subscriptions text[])
LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY SELECT r.topic, r.subscriptions FROM crier.topic_routes r
  WHERE r.topic = ANY (p_topics) AND r.topic <> ALL (coalesce(p_unrouted, '{}'));
  IF p_unrouted IS NOT NULL THEN
    RETURN QUERY SELECT f.topic, f.subscriptions FROM crier.resolve_routes(p_unrouted) f;
  END IF;
END $$;
--> statement-breakpoint
-- Wakes the parked workers of these subscriptions (fan_out's last step, its own function so that
-- how producers wake workers can change without rewriting fan_out).
CREATE FUNCTION crier.wake_parked(p_subscriptions text[]) RETURNS void
LANGUAGE sql AS $$
  SELECT crier.wake(array_agg(DISTINCT p.subscription))
  FROM crier.parked_workers p
  WHERE p.subscription = ANY (p_subscriptions)
  HAVING count(*) > 0
$$;
--> statement-breakpoint
-- fan_out as 0005_delivery_guarantees left it (and 0006_roles made it: SECURITY DEFINER with a
-- fixed search_path), reading routes through crier.current_routes and waking through
-- crier.wake_parked.
CREATE OR REPLACE FUNCTION crier.fan_out() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_ordered boolean;
  v_parked boolean;
  v_topics text[];
  v_unrouted text[];
  v_pending text[];
  v_heads bigint[];
  v_head_subs text[];
BEGIN
  -- One statement for what the rest needs to know (every statement here costs publishers): the
  -- topics, those without a current route, whether any subscription is ordered, any worker parked.
  SELECT array_agg(t.topic),
         array_agg(t.topic) FILTER (WHERE NOT EXISTS (
           SELECT 1 FROM crier.topic_routes r JOIN crier.route_epoch x ON x.epoch = r.epoch
           WHERE r.topic = t.topic)),
         EXISTS (SELECT 1 FROM crier.subscriptions WHERE ordered),
         EXISTS (SELECT 1 FROM crier.parked_workers)
  INTO v_topics, v_unrouted, v_ordered, v_parked
  FROM (SELECT DISTINCT e.topic FROM new_events e) t;

  IF NOT v_ordered THEN
    -- No ordered subscription: the plain fan-out, one pass.
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
