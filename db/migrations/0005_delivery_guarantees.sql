-- Delivery guarantees (issue 6): per-key ordering, producer idempotency keys, delayed delivery,
-- consumer-side deduplication and causation chains. Transactional handlers need no SQL of their
-- own: the worker runs crier.complete inside the handler's transaction. docs/guarantees.md.
--
-- Per-key ordering, the shape of it. For an ordered subscription, each active (subscription, key)
-- has one head in crier.ordered_keys; only the head is ever pending/running/dead. Every later
-- delivery of that key is 'waiting', which no claim ever reads (claim reads the pending index), so
-- a key with a long or blocked backlog costs the claim path nothing. When the head finishes
-- (done, or dead under the 'skip' policy) the next waiting delivery of the key, by id, becomes
-- pending and the head. The ordered_keys row lock serialises producers and acks of the same key.
--
--   waiting --promoted (its head finished)--> pending --claim--> running --> done | pending | dead
--   dead (head, policy 'block') keeps the key blocked until it is requeued or crier.unblock_key.

-- Tables and columns ------------------------------------------------------------------------------
ALTER TABLE crier.events ADD COLUMN deliver_at timestamptz;
--> statement-breakpoint
CREATE INDEX events_correlation_idx ON crier.events ((headers ->> 'correlationId'))
WHERE headers ? 'correlationId';
--> statement-breakpoint
ALTER TABLE crier.subscriptions
  ADD COLUMN ordered boolean NOT NULL DEFAULT false,
  ADD COLUMN ordered_on_dead text NOT NULL DEFAULT 'block',
  ADD CONSTRAINT subscriptions_ordered_on_dead_valid CHECK (ordered_on_dead in ('block', 'skip'));
--> statement-breakpoint
ALTER TABLE crier.deliveries ADD COLUMN ordering_key text;
--> statement-breakpoint
ALTER TABLE crier.deliveries DROP CONSTRAINT deliveries_state_valid,
  ADD CONSTRAINT deliveries_state_valid CHECK (state in ('pending', 'running', 'done', 'dead', 'waiting'));
--> statement-breakpoint
CREATE INDEX deliveries_waiting_idx ON crier.deliveries (subscription, ordering_key, id)
WHERE state = 'waiting';
--> statement-breakpoint
CREATE TABLE crier.ordered_keys (
  subscription text NOT NULL,
  key text NOT NULL,
  head_id bigint NOT NULL,
  since timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT ordered_keys_subscription_key_pk PRIMARY KEY (subscription, key)
);
--> statement-breakpoint
CREATE TABLE crier.idempotency_keys (
  topic text NOT NULL,
  key text NOT NULL,
  event_id bigint NOT NULL,
  event_uuid uuid NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT idempotency_keys_topic_key_pk PRIMARY KEY (topic, key)
);
--> statement-breakpoint
CREATE INDEX idempotency_keys_created_idx ON crier.idempotency_keys (created_at);
--> statement-breakpoint
CREATE TABLE crier.processed (
  subscription text NOT NULL,
  event_id bigint NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT processed_subscription_event_id_pk PRIMARY KEY (subscription, event_id)
);
--> statement-breakpoint
CREATE INDEX processed_at_idx ON crier.processed (at);
--> statement-breakpoint

-- Per-key ordering ------------------------------------------------------------------------------
-- The head of a key finished (done, dead-and-skipped, or given up by an operator): the next waiting
-- delivery of the key becomes pending and the head, or the key goes idle (its row is deleted).
-- Does nothing when p_delivery is not the key's head. The row lock waits for a producer that is
-- still inserting behind this key, so its delivery is seen here once it commits.
CREATE FUNCTION crier.release_key(p_subscription text, p_key text, p_delivery bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_head bigint;
  v_next bigint;
BEGIN
  SELECT k.head_id INTO v_head FROM crier.ordered_keys k
  WHERE k.subscription = p_subscription AND k.key = p_key
  FOR UPDATE;
  IF NOT FOUND OR v_head IS DISTINCT FROM p_delivery THEN
    RETURN NULL;
  END IF;
  SELECT d.id INTO v_next FROM crier.deliveries d
  WHERE d.subscription = p_subscription AND d.ordering_key = p_key AND d.state = 'waiting'
  ORDER BY d.id
  LIMIT 1;
  IF v_next IS NULL THEN
    DELETE FROM crier.ordered_keys WHERE subscription = p_subscription AND key = p_key;
    RETURN NULL;
  END IF;
  UPDATE crier.ordered_keys SET head_id = v_next, since = now()
  WHERE subscription = p_subscription AND key = p_key;
  UPDATE crier.deliveries SET state = 'pending', updated_at = now() WHERE id = v_next;
  IF EXISTS (SELECT 1 FROM crier.parked_workers p WHERE p.subscription = p_subscription) THEN
    PERFORM crier.wake(ARRAY[p_subscription]);
  END IF;
  RETURN v_next;
END $$;
--> statement-breakpoint
-- Keeps the heads true whatever changes a delivery's state (complete, fail, rescue_expired, an
-- operator's requeue): a head that finishes hands its key on; a finished delivery brought back to
-- pending (requeue, replay) queues behind the key's current head instead of overtaking it.
CREATE FUNCTION crier.ordered_state_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_head bigint;
BEGIN
  IF NEW.state IN ('done', 'dead') AND OLD.state NOT IN ('done', 'dead') THEN
    IF NEW.state = 'dead' AND coalesce(
         (SELECT s.ordered_on_dead FROM crier.subscriptions s WHERE s.name = NEW.subscription), 'block') = 'block' THEN
      RETURN NEW; -- the dead head keeps its key: blocked, visible in crier.blocked_keys
    END IF;
    PERFORM crier.release_key(NEW.subscription, NEW.ordering_key, NEW.id);
  ELSIF OLD.state IN ('done', 'dead') AND NEW.state NOT IN ('done', 'dead') THEN
    INSERT INTO crier.ordered_keys AS k (subscription, key, head_id)
    VALUES (NEW.subscription, NEW.ordering_key, NEW.id)
    ON CONFLICT (subscription, key) DO UPDATE SET head_id = k.head_id
    RETURNING k.head_id INTO v_head;
    IF v_head <> NEW.id THEN
      NEW.state := 'waiting';
    END IF;
  END IF;
  RETURN NEW;
END $$;
--> statement-breakpoint
-- Claims (pending -> running), retries and releases (running -> pending) do not fire it.
CREATE TRIGGER deliveries_ordered_state BEFORE UPDATE OF state ON crier.deliveries
FOR EACH ROW
WHEN (NEW.ordering_key IS NOT NULL AND OLD.state <> NEW.state
      AND (NEW.state IN ('done', 'dead') OR OLD.state IN ('done', 'dead')))
EXECUTE FUNCTION crier.ordered_state_changed();
--> statement-breakpoint
-- Acks of many deliveries lock their keys in (subscription, key) order before touching any row,
-- the order producers lock them in (crier.fan_out): otherwise a batched ack and a producer of the
-- same keys could deadlock. Costs nothing while no subscription is ordered.
CREATE FUNCTION crier.lock_ordered_keys(p_ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM crier.subscriptions WHERE ordered) THEN
    PERFORM 1 FROM crier.ordered_keys k
    JOIN crier.deliveries d ON d.subscription = k.subscription AND d.ordering_key = k.key
    WHERE d.id = ANY (p_ids)
    ORDER BY k.subscription, k.key
    FOR UPDATE OF k;
  END IF;
END $$;
--> statement-breakpoint
-- redefined by issue 6: locks the acked deliveries' ordered keys first (crier.lock_ordered_keys).
-- Based on the body from 0006_fast_protocol: this migration must run after it (see the journal).
CREATE OR REPLACE FUNCTION crier.complete(p_worker text, p_ids bigint[], p_attempts integer[])
RETURNS SETOF bigint
LANGUAGE sql AS $$
  SELECT crier.lock_ordered_keys(p_ids);
  UPDATE crier.deliveries d
  SET state = 'done', locked_until = NULL, finished_at = now(), updated_at = now()
  FROM unnest(p_ids, p_attempts) AS a(id, attempt)
  WHERE d.id = a.id AND d.attempts = a.attempt AND d.state = 'running' AND d.worker = p_worker
  RETURNING d.id
$$;
--> statement-breakpoint
-- redefined by issue 6: locks the failed deliveries' ordered keys first (crier.lock_ordered_keys).
-- Based on the body from 0006_fast_protocol.
CREATE OR REPLACE FUNCTION crier.fail(
  p_worker text, p_ids bigint[], p_attempts integer[], p_errors text[], p_stacks text[],
  p_give_up boolean[]
) RETURNS TABLE (delivery_id bigint, state text, available_at timestamptz)
LANGUAGE sql AS $$
  SELECT crier.lock_ordered_keys(p_ids);
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
-- Operator: lets the key of a dead head move on without requeuing it (the dead delivery stays dead),
-- or frees a key whose head was deleted. Returns the delivery that became the head, if any.
CREATE FUNCTION crier.unblock_key(p_subscription text, p_key text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_head bigint;
BEGIN
  SELECT k.head_id INTO v_head FROM crier.ordered_keys k
  LEFT JOIN crier.deliveries d ON d.id = k.head_id
  WHERE k.subscription = p_subscription AND k.key = p_key AND (d.id IS NULL OR d.state = 'dead');
  IF v_head IS NULL THEN
    RETURN NULL;
  END IF;
  RETURN crier.release_key(p_subscription, p_key, v_head);
END $$;
--> statement-breakpoint
-- Keys of ordered subscriptions that are stuck: their head is dead (policy 'block') or gone.
CREATE VIEW crier.blocked_keys AS
SELECT k.subscription, k.key, k.head_id AS dead_delivery_id, d.event_id, d.attempts,
       d.last_error, coalesce(d.finished_at, k.since) AS blocked_since,
       (SELECT count(*) FROM crier.deliveries w
        WHERE w.subscription = k.subscription AND w.ordering_key = k.key AND w.state = 'waiting') AS waiting
FROM crier.ordered_keys k
LEFT JOIN crier.deliveries d ON d.id = k.head_id
WHERE d.id IS NULL OR d.state = 'dead';
--> statement-breakpoint

-- redefined by issue 6: per-key ordering (deliveries of ordered subscriptions with a key start
-- 'waiting' and only a key's head becomes pending) and delayed delivery (available_at = the
-- event's deliver_at). Unordered subscriptions fan out exactly as before.
CREATE OR REPLACE FUNCTION crier.fan_out() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_unrouted text[];
  v_pending text[];
  v_heads bigint[];
  v_head_subs text[];
  v_wake text[];
BEGIN
  SELECT array_agg(DISTINCT e.topic) INTO v_unrouted
  FROM new_events e
  WHERE NOT EXISTS (
    SELECT 1 FROM crier.topic_routes r JOIN crier.route_epoch x ON x.epoch = r.epoch
    WHERE r.topic = e.topic);
  IF v_unrouted IS NOT NULL THEN
    PERFORM crier.resolve_routes(v_unrouted);
  END IF;

  IF NOT EXISTS (SELECT 1 FROM crier.subscriptions WHERE ordered) THEN
    -- No ordered subscription: the plain fan-out, one pass.
    WITH inserted AS (
      INSERT INTO crier.deliveries (event_id, subscription, available_at)
      SELECT e.id, s.name, coalesce(e.deliver_at, now())
      FROM new_events e
      JOIN crier.topic_routes r ON r.topic = e.topic
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
      JOIN crier.topic_routes r ON r.topic = e.topic
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

  SELECT array_agg(s) INTO v_wake
  FROM (SELECT DISTINCT s FROM unnest(coalesce(v_pending, '{}') || coalesce(v_head_subs, '{}')) s) w
  WHERE EXISTS (SELECT 1 FROM crier.parked_workers p WHERE p.subscription = w.s);
  IF v_wake IS NOT NULL THEN
    PERFORM crier.wake(v_wake);
  END IF;
  RETURN NULL;
END $$;
--> statement-breakpoint

-- Publishing from SQL with idempotency and delay ------------------------------------------------
-- redefined by issue 6: p_idempotency_key (a retried call returns the event of the first one,
-- per topic) and p_deliver_at (delayed delivery). Dropped and recreated: added parameters with
-- defaults would otherwise make a second, ambiguous overload.
DROP FUNCTION crier.publish(text, jsonb, text, jsonb);
--> statement-breakpoint
-- select crier.publish('order.created', '{"id": 42}', '42', '{}', p_idempotency_key => 'req-7',
--                      p_deliver_at => now() + interval '10 minutes');
CREATE FUNCTION crier.publish(
  p_topic text, p_payload jsonb, p_key text DEFAULT NULL, p_headers jsonb DEFAULT '{}',
  p_idempotency_key text DEFAULT NULL, p_deliver_at timestamptz DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
  v_uuid uuid := gen_random_uuid();
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
  IF p_idempotency_key IS NOT NULL THEN
    IF p_idempotency_key = '' OR length(p_idempotency_key) > 255 THEN
      RAISE EXCEPTION 'CRIER_INVALID_IDEMPOTENCY_KEY: an idempotency key is 1-255 characters, got %', quote_literal(p_idempotency_key)
        USING ERRCODE = '22023';
    END IF;
    v_id := nextval(pg_get_serial_sequence('crier.events', 'id'));
    -- Waits for a concurrent transaction holding the same key, then sees its outcome.
    INSERT INTO crier.idempotency_keys (topic, key, event_id, event_uuid)
    VALUES (p_topic, p_idempotency_key, v_id, v_uuid)
    ON CONFLICT (topic, key) DO NOTHING;
    IF NOT FOUND THEN
      SELECT k.event_id INTO v_id FROM crier.idempotency_keys k
      WHERE k.topic = p_topic AND k.key = p_idempotency_key;
      RETURN v_id;
    END IF;
    INSERT INTO crier.events (id, uuid, topic, key, payload, headers, deliver_at)
    OVERRIDING SYSTEM VALUE
    VALUES (v_id, v_uuid, p_topic, p_key, p_payload, p_headers, p_deliver_at);
    RETURN v_id;
  END IF;
  INSERT INTO crier.events (uuid, topic, key, payload, headers, deliver_at)
  VALUES (v_uuid, p_topic, p_key, p_payload, p_headers, p_deliver_at)
  RETURNING id INTO v_id;
  RETURN v_id;
END $$;
--> statement-breakpoint
-- Forgets idempotency keys older than the retention window; returns how many.
CREATE FUNCTION crier.prune_idempotency_keys(p_older_than interval DEFAULT interval '7 days')
RETURNS integer
LANGUAGE sql AS $$
  WITH gone AS (DELETE FROM crier.idempotency_keys WHERE created_at < now() - p_older_than RETURNING 1)
  SELECT count(*)::integer FROM gone
$$;
--> statement-breakpoint

-- Consumer-side deduplication -------------------------------------------------------------------
-- Records that a subscription processed an event. True the first time, false when it was already
-- recorded (a redelivery): call it in the same transaction as the handler's own writes. A second
-- caller racing on the same event waits for the first one's transaction, then gets false.
CREATE FUNCTION crier.mark_processed(p_subscription text, p_event_id bigint) RETURNS boolean
LANGUAGE sql AS $$
  WITH marked AS (
    INSERT INTO crier.processed (subscription, event_id) VALUES (p_subscription, p_event_id)
    ON CONFLICT DO NOTHING
    RETURNING 1
  )
  SELECT EXISTS (SELECT 1 FROM marked)
$$;
--> statement-breakpoint
CREATE FUNCTION crier.is_processed(p_subscription text, p_event_id bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM crier.processed WHERE subscription = p_subscription AND event_id = p_event_id)
$$;
--> statement-breakpoint
CREATE FUNCTION crier.prune_processed(p_older_than interval DEFAULT interval '30 days') RETURNS integer
LANGUAGE sql AS $$
  WITH gone AS (DELETE FROM crier.processed WHERE at < now() - p_older_than RETURNING 1)
  SELECT count(*)::integer FROM gone
$$;
--> statement-breakpoint

-- Causation --------------------------------------------------------------------------------------
-- The conversation an event belongs to, as a tree: every event with the same correlation id,
-- each under the event that caused it (depth 0 = the event that started it). p_event is an event
-- id or uuid. Events published from handlers carry correlationId and causationId (uuids) headers.
CREATE FUNCTION crier.event_chain(p_event text)
RETURNS TABLE (depth integer, id bigint, uuid uuid, topic text, key text, causation_id text,
               correlation_id text, created_at timestamptz, path text)
LANGUAGE sql STABLE AS $$
  WITH RECURSIVE target AS (
    SELECT coalesce(e.headers ->> 'correlationId', e.uuid::text) AS correlation
    FROM crier.events e
    WHERE CASE WHEN p_event ~ '^[0-9]+$' THEN e.id = p_event::bigint
               WHEN p_event ~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$' THEN e.uuid = p_event::uuid
               ELSE false END
  ), conversation AS (
    SELECT e.*, coalesce(e.headers ->> 'correlationId', e.uuid::text) AS correlation,
           e.headers ->> 'causationId' AS causation
    FROM crier.events e, target t
    WHERE (e.headers ? 'correlationId' AND e.headers ->> 'correlationId' = t.correlation)
       OR e.uuid = CASE WHEN t.correlation ~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$'
                        THEN t.correlation::uuid END
  ), tree AS (
    SELECT 0 AS depth, c.id, c.uuid, c.topic, c.key, c.causation, c.correlation, c.created_at,
           c.topic AS path, ARRAY[c.id] AS ids
    FROM conversation c
    WHERE c.causation IS NULL OR NOT EXISTS (SELECT 1 FROM conversation p WHERE p.uuid::text = c.causation)
    UNION ALL
    SELECT t.depth + 1, c.id, c.uuid, c.topic, c.key, c.causation, c.correlation, c.created_at,
           t.path || ' > ' || c.topic, t.ids || c.id
    FROM conversation c JOIN tree t ON c.causation = t.uuid::text
    WHERE t.depth < 100
  )
  SELECT depth, id, uuid, topic, key, causation, correlation, created_at, path FROM tree ORDER BY ids
$$;
