-- crier.fan_out as 0007_route_cache_without_waits left it (before 0011_cheaper_publish), for side-by-side
-- runs: node --import tsx bench/src/probes/publish-cpu.ts 3000 4 1 crier bench/src/probes/variants/fan-out-0007.sql raw
CREATE OR REPLACE FUNCTION crier.fan_out() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
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
END $f$;
