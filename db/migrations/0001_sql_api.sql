-- crier's SQL API: topic routing, the fan-out trigger, publish from SQL, and the worker protocol
-- (claim, complete, fail, extend leases, release, rescue, park). The TypeScript library calls these
-- functions; SQL users and other languages may call them too. Every name is schema-qualified with
-- "crier": migrate() rewrites it when a different schema is configured.
--
-- A delivery's life (docs/delivery-states.md):
--   pending --claim--> running --complete--> done
--                      running --fail--> pending (retry at now() + backoff) | dead (attempts used up)
--                      running --lease expired--> pending | dead   (the attempt counts)
--                      running --release (graceful shutdown)--> pending   (the attempt is given back)

-- Topic names and patterns ---------------------------------------------------------------------
-- A topic is dot-separated segments of [A-Za-z0-9_-]. A pattern's segments may also be "*"
-- (exactly one segment) or "#" (zero or more segments), as in AMQP topic exchanges.
CREATE FUNCTION crier.topic_valid(p_topic text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT p_topic IS NOT NULL AND length(p_topic) <= 255
     AND p_topic ~ '^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$'
$$;
--> statement-breakpoint
CREATE FUNCTION crier.topic_pattern_valid(p_pattern text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT p_pattern IS NOT NULL AND length(p_pattern) <= 255
     AND p_pattern ~ '^([A-Za-z0-9_-]+|\*|#)(\.([A-Za-z0-9_-]+|\*|#))*$'
$$;
--> statement-breakpoint
-- The pattern as a regular expression over '.' || topic: each segment brings its own leading dot,
-- so "#" can stand for zero segments without leaving a stray separator behind.
CREATE FUNCTION crier.topic_pattern_regex(p_pattern text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT '^' || string_agg(
           CASE seg WHEN '*' THEN '\.[^.]+' WHEN '#' THEN '(\.[^.]+)*' ELSE '\.' || seg END,
           '' ORDER BY ord) || '$'
  FROM unnest(string_to_array(p_pattern, '.')) WITH ORDINALITY AS s(seg, ord)
$$;
--> statement-breakpoint
CREATE FUNCTION crier.topic_matches(p_topic text, p_pattern text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT ('.' || p_topic) ~ crier.topic_pattern_regex(p_pattern)
$$;
--> statement-breakpoint
CREATE FUNCTION crier.topic_patterns_valid(p_patterns text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT cardinality(p_patterns) > 0
     AND NOT EXISTS (SELECT 1 FROM unnest(p_patterns) p WHERE NOT crier.topic_pattern_valid(p))
$$;
--> statement-breakpoint
ALTER TABLE crier.subscriptions ADD CONSTRAINT subscriptions_topics_valid
CHECK (crier.topic_patterns_valid(topics));
--> statement-breakpoint
ALTER TABLE crier.parked_workers SET UNLOGGED;
--> statement-breakpoint

-- Routing ----------------------------------------------------------------------------------------
INSERT INTO crier.route_epoch DEFAULT VALUES;
--> statement-breakpoint
-- Any change to which subscriptions exist or what they match invalidates every cached route.
CREATE FUNCTION crier.invalidate_routes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE crier.route_epoch SET epoch = epoch + 1;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER subscriptions_routes_changed AFTER INSERT OR DELETE ON crier.subscriptions
FOR EACH ROW EXECUTE FUNCTION crier.invalidate_routes();
--> statement-breakpoint
CREATE TRIGGER subscriptions_topics_changed AFTER UPDATE OF topics ON crier.subscriptions
FOR EACH ROW WHEN (OLD.topics IS DISTINCT FROM NEW.topics)
EXECUTE FUNCTION crier.invalidate_routes();
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
-- Wakes parked workers: the payload names subscriptions (never an event), '*' when too many.
CREATE FUNCTION crier.wake(p_subscriptions text[]) RETURNS void
LANGUAGE sql AS $$
  SELECT pg_notify('crier', CASE WHEN length(names) <= 1000 THEN names ELSE '*' END)
  FROM (SELECT string_agg(DISTINCT s, ' ') AS names FROM unnest(p_subscriptions) s) w
  WHERE names IS NOT NULL
$$;
--> statement-breakpoint
-- Fan-out at write time: one statement-level trigger per INSERT, whatever its number of rows.
-- It notifies only when a worker of a receiving subscription is parked, so under load producers
-- never take the commit-time NOTIFY lock.
CREATE FUNCTION crier.fan_out() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_unrouted text[];
  v_wake text[];
BEGIN
  SELECT array_agg(DISTINCT e.topic) INTO v_unrouted
  FROM new_events e
  WHERE NOT EXISTS (
    SELECT 1 FROM crier.topic_routes r JOIN crier.route_epoch x ON x.epoch = r.epoch
    WHERE r.topic = e.topic);

  -- Routed topics use their cached row (as this statement sees it); the others are resolved here.
  WITH routes AS (
    SELECT r.topic, r.subscriptions FROM crier.topic_routes r
    WHERE r.topic IN (SELECT DISTINCT topic FROM new_events)
      AND r.topic <> ALL (coalesce(v_unrouted, '{}'))
    UNION ALL
    SELECT f.topic, f.subscriptions FROM crier.resolve_routes(v_unrouted) f WHERE v_unrouted IS NOT NULL
  ), inserted AS (
    INSERT INTO crier.deliveries (event_id, subscription)
    SELECT e.id, s.name
    FROM new_events e
    JOIN routes r ON r.topic = e.topic
    CROSS JOIN LATERAL unnest(r.subscriptions) AS s(name)
    ORDER BY e.id
    RETURNING subscription
  )
  SELECT array_agg(i.subscription) INTO v_wake
  FROM (SELECT DISTINCT subscription FROM inserted) i
  WHERE EXISTS (SELECT 1 FROM crier.parked_workers p WHERE p.subscription = i.subscription);

  IF v_wake IS NOT NULL THEN
    PERFORM crier.wake(v_wake);
  END IF;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER events_fan_out AFTER INSERT ON crier.events
REFERENCING NEW TABLE AS new_events
FOR EACH STATEMENT EXECUTE FUNCTION crier.fan_out();
--> statement-breakpoint

-- Publishing from SQL ----------------------------------------------------------------------------
-- select crier.publish('order.created', '{"id": 42}', '42');  -- inside the business transaction
CREATE FUNCTION crier.publish(
  p_topic text, p_payload jsonb, p_key text DEFAULT NULL, p_headers jsonb DEFAULT '{}'
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
BEGIN
  IF NOT crier.topic_valid(p_topic) THEN
    RAISE EXCEPTION 'CRIER_INVALID_TOPIC: % is not a valid topic (dot-separated segments of letters, digits, "_" and "-", at most 255 characters)',
      coalesce(quote_literal(p_topic), 'NULL') USING ERRCODE = '22023';
  END IF;
  IF p_payload IS NULL THEN
    RAISE EXCEPTION 'CRIER_INVALID_PAYLOAD: payload is NULL (use ''{}''::jsonb or ''null''::jsonb for an empty payload)'
      USING ERRCODE = '22023';
  END IF;
  IF p_headers IS NULL OR jsonb_typeof(p_headers) <> 'object' THEN
    RAISE EXCEPTION 'CRIER_INVALID_HEADERS: headers must be a JSON object, got %', coalesce(p_headers::text, 'NULL')
      USING ERRCODE = '22023';
  END IF;
  INSERT INTO crier.events (topic, key, payload, headers)
  VALUES (p_topic, p_key, p_payload, p_headers)
  RETURNING id INTO v_id;
  RETURN v_id;
END $$;
--> statement-breakpoint

-- The worker protocol ----------------------------------------------------------------------------
-- Claims up to p_limit due deliveries of one subscription for one worker. The inner SELECT reads
-- only deliveries_pending_idx (its ORDER BY is that index's order), so the cost does not grow
-- with history. Each claim counts an attempt and takes a lease of the subscription's lease_ms.
CREATE FUNCTION crier.claim(p_subscription text, p_worker text, p_limit integer)
RETURNS TABLE (
  delivery_id bigint, attempt integer, locked_until timestamptz,
  event_id bigint, event_uuid uuid, topic text, key text, payload jsonb, headers jsonb,
  created_at timestamptz
)
LANGUAGE plpgsql AS $$
DECLARE
  v_lease interval;
  v_paused boolean;
BEGIN
  SELECT s.lease_ms * interval '1 millisecond', s.paused INTO v_lease, v_paused
  FROM crier.subscriptions s WHERE s.name = p_subscription;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'CRIER_UNKNOWN_SUBSCRIPTION: no subscription %', quote_literal(p_subscription)
      USING ERRCODE = 'P0002';
  END IF;
  IF v_paused THEN
    RETURN;
  END IF;

  RETURN QUERY
  WITH picked AS (
    SELECT d.id FROM crier.deliveries d
    WHERE d.subscription = p_subscription AND d.state = 'pending' AND d.available_at <= now()
    ORDER BY d.available_at, d.id
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED
  ), claimed AS (
    UPDATE crier.deliveries d
    SET state = 'running', attempts = d.attempts + 1, worker = p_worker,
        locked_until = now() + v_lease, started_at = now(), updated_at = now()
    FROM picked
    WHERE d.id = picked.id
    RETURNING d.id, d.attempts, d.locked_until, d.event_id
  )
  SELECT c.id, c.attempts, c.locked_until, e.id, e.uuid, e.topic, e.key, e.payload, e.headers,
         e.created_at
  FROM claimed c JOIN crier.events e ON e.id = c.event_id
  ORDER BY c.id;
END $$;
--> statement-breakpoint
-- Milliseconds until the next pending delivery of a subscription falls due (<= 0: due now; NULL:
-- nothing pending), measured on the database clock so that worker clocks never matter. An idle
-- worker sleeps exactly that long.
CREATE FUNCTION crier.next_due_in(p_subscription text) RETURNS double precision
LANGUAGE sql STABLE AS $$
  SELECT extract(epoch FROM min(available_at) - now()) * 1000 FROM crier.deliveries
  WHERE subscription = p_subscription AND state = 'pending'
$$;
--> statement-breakpoint
-- Marks deliveries done. Only the attempt that holds the lease may: the (worker, attempt) guard
-- refuses an ack from a worker whose lease expired and whose delivery was claimed again.
-- Returns the ids that were completed.
CREATE FUNCTION crier.complete(p_worker text, p_ids bigint[], p_attempts integer[])
RETURNS SETOF bigint
LANGUAGE sql AS $$
  UPDATE crier.deliveries d
  SET state = 'done', locked_until = NULL, finished_at = now(), updated_at = now()
  FROM unnest(p_ids, p_attempts) AS a(id, attempt)
  WHERE d.id = a.id AND d.attempts = a.attempt AND d.state = 'running' AND d.worker = p_worker
  RETURNING d.id
$$;
--> statement-breakpoint
-- Records failed attempts: back to pending at now() + backoff (exponential, capped, with jitter),
-- or dead when the attempts are used up or p_give_up says retrying cannot help.
CREATE FUNCTION crier.fail(
  p_worker text, p_ids bigint[], p_attempts integer[], p_errors text[], p_stacks text[],
  p_give_up boolean[]
) RETURNS TABLE (delivery_id bigint, state text, available_at timestamptz)
LANGUAGE sql AS $$
  WITH failed AS (
    SELECT a.*, (a.give_up OR d.attempts >= s.max_attempts) AS is_dead,
           least(s.backoff_max_ms, s.backoff_base_ms * power(2, least(d.attempts - 1, 40)))
             * (0.5 + random() * 0.5) AS backoff_ms
    FROM unnest(p_ids, p_attempts, p_errors, p_stacks, p_give_up) AS a(id, attempt, error, stack, give_up)
    JOIN crier.deliveries d ON d.id = a.id
    JOIN crier.subscriptions s ON s.name = d.subscription
  )
  UPDATE crier.deliveries d
  SET state = CASE WHEN f.is_dead THEN 'dead' ELSE 'pending' END,
      available_at = CASE WHEN f.is_dead THEN d.available_at
                          ELSE now() + f.backoff_ms * interval '1 millisecond' END,
      locked_until = NULL,
      last_error = f.error,
      last_error_stack = f.stack,
      errors = d.errors || jsonb_build_object('attempt', d.attempts, 'at', now(), 'worker', p_worker, 'error', f.error),
      finished_at = CASE WHEN f.is_dead THEN now() END,
      updated_at = now()
  FROM failed f
  WHERE d.id = f.id AND d.attempts = f.attempt AND d.state = 'running' AND d.worker = p_worker
  RETURNING d.id, d.state, d.available_at
$$;
--> statement-breakpoint
-- Heartbeat: renews the leases this worker still holds; returns the ids it still holds.
CREATE FUNCTION crier.extend_leases(p_worker text, p_ids bigint[], p_attempts integer[])
RETURNS SETOF bigint
LANGUAGE sql AS $$
  UPDATE crier.deliveries d
  SET locked_until = now() + s.lease_ms * interval '1 millisecond', updated_at = now()
  FROM unnest(p_ids, p_attempts) AS a(id, attempt), crier.subscriptions s
  WHERE d.id = a.id AND d.attempts = a.attempt AND d.state = 'running' AND d.worker = p_worker
    AND s.name = d.subscription
  RETURNING d.id
$$;
--> statement-breakpoint
-- Graceful shutdown: hands unfinished deliveries back without counting the attempt.
CREATE FUNCTION crier.release(p_worker text, p_ids bigint[], p_attempts integer[])
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_released bigint[];
  v_subs text[];
BEGIN
  WITH released AS (
    UPDATE crier.deliveries d
    SET state = 'pending', attempts = d.attempts - 1, worker = NULL, locked_until = NULL,
        started_at = NULL, available_at = now(), updated_at = now()
    FROM unnest(p_ids, p_attempts) AS a(id, attempt)
    WHERE d.id = a.id AND d.attempts = a.attempt AND d.state = 'running' AND d.worker = p_worker
    RETURNING d.id, d.subscription
  )
  SELECT array_agg(id), array_agg(DISTINCT subscription) INTO v_released, v_subs FROM released;
  IF v_subs IS NOT NULL THEN
    PERFORM crier.wake(v_subs);
  END IF;
  RETURN QUERY SELECT unnest(coalesce(v_released, '{}'));
END $$;
--> statement-breakpoint
-- Brings back deliveries whose lease ran out (their worker crashed, hung or lost its connection).
-- The lost attempt counts: a delivery that keeps killing its workers ends dead, not in a loop.
CREATE FUNCTION crier.rescue_expired(p_limit integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_count integer;
  v_wake text[];
BEGIN
  WITH expired AS (
    SELECT d.id FROM crier.deliveries d
    WHERE d.state = 'running' AND d.locked_until < now()
    ORDER BY d.locked_until
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED
  ), rescued AS (
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
    FROM expired, crier.subscriptions s
    WHERE d.id = expired.id AND s.name = d.subscription
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
--> statement-breakpoint
-- A worker that found nothing to claim parks, so that producers know to wake it. Parking again
-- refreshes the row; rows of workers that vanished without unparking expire after two minutes.
CREATE FUNCTION crier.park(p_worker text, p_subscriptions text[]) RETURNS void
LANGUAGE sql AS $$
  DELETE FROM crier.parked_workers WHERE since < now() - interval '2 minutes';
  INSERT INTO crier.parked_workers (subscription, worker)
  SELECT s, p_worker FROM unnest(p_subscriptions) s
  ON CONFLICT (subscription, worker) DO UPDATE SET since = now();
$$;
--> statement-breakpoint
CREATE FUNCTION crier.unpark(p_worker text, p_subscriptions text[]) RETURNS void
LANGUAGE sql AS $$
  DELETE FROM crier.parked_workers WHERE worker = p_worker AND subscription = ANY (p_subscriptions);
$$;
