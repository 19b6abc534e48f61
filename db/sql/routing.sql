-- Routing: which subscriptions receive a topic. Routes are cached per topic in crier.topic_routes,
-- stamped with crier.route_epoch; any change to the subscriptions bumps the epoch, so stale rows
-- are simply resolved again. crier.fan_out (fan_out.sql) reads them.

-- Any change to which subscriptions exist or what they match invalidates every cached route. Runs
-- as its owner: workers declaring their subscriptions need no rights on the route epoch.
CREATE OR REPLACE FUNCTION crier.invalidate_routes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE crier.route_epoch SET epoch = epoch + 1;
  RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER subscriptions_routes_changed AFTER INSERT OR DELETE ON crier.subscriptions
FOR EACH ROW EXECUTE FUNCTION crier.invalidate_routes();

CREATE OR REPLACE TRIGGER subscriptions_topics_changed AFTER UPDATE OF topics ON crier.subscriptions
FOR EACH ROW WHEN (OLD.topics IS DISTINCT FROM NEW.topics)
EXECUTE FUNCTION crier.invalidate_routes();

-- Matches the given topics against the subscriptions and returns their routes. Only candidates
-- are tested: subscriptions are found by their patterns' first segments (the GIN index on
-- crier.subscriptions.topic_heads, topics.sql), so a new topic's first publish costs about what a
-- cached one does, however many subscriptions start with other words. It also caches
-- them, but only for topics no other open transaction is caching right now (a try-lock, never a
-- wait): the cache row stays locked until the publisher commits, and publishers must never wait
-- on each other's business transactions or deadlock over route rows. Rows written from an older
-- snapshot carry an older epoch and are simply resolved again later.
CREATE OR REPLACE FUNCTION crier.resolve_routes(p_topics text[])
RETURNS TABLE (topic text, subscriptions text[])
LANGUAGE sql AS $$
  WITH resolved AS (
    SELECT t.topic,
           coalesce(array_agg(s.name ORDER BY s.name) FILTER (WHERE s.name IS NOT NULL), '{}') AS subscriptions
    FROM unnest(p_topics) AS t(topic)
    LEFT JOIN crier.subscriptions s
      ON s.topic_heads && ARRAY[split_part(t.topic, '.', 1), '*']
     AND EXISTS (SELECT 1 FROM unnest(s.topics) p
                 WHERE crier.topic_pattern_head(p) IN (split_part(t.topic, '.', 1), '*')
                   AND crier.topic_matches(t.topic, p))
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

-- The routes of the given topics: cached rows for the routed ones, freshly resolved for the rest.
-- plpgsql rather than sql: its plans are kept for the session (a non-inlined SQL function is
-- planned on every call, which cost publishing about a third of its rate).
CREATE OR REPLACE FUNCTION crier.current_routes(p_topics text[], p_unrouted text[])
RETURNS TABLE (topic text, subscriptions text[])
LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY SELECT r.topic, r.subscriptions FROM crier.topic_routes r
  WHERE r.topic = ANY (p_topics) AND r.topic <> ALL (coalesce(p_unrouted, '{}'));
  IF p_unrouted IS NOT NULL THEN
    RETURN QUERY SELECT f.topic, f.subscriptions FROM crier.resolve_routes(p_unrouted) f;
  END IF;
END $$;
