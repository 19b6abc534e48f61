-- Audit views and operator actions (issue 4). The views are the stable face for SQL users and
-- auditors: the tables behind them may change. The functions are what `crier` (the CLI) and the
-- library's admin API call, so SQL users get exactly the same operations:
--   crier.requeue            dead -> pending, attempts reset, due now; never touches other states
--   crier.replay             re-deliver past events to a subscription, never twice at once
--   crier.prune_deliveries   delete finished deliveries in small keyset batches
--   crier.prune_events       delete old events no delivery refers to, in small keyset batches
--   crier.prune              (procedure) both, committing after every batch
--   crier.pause_subscription / resume_subscription / remove_subscription
-- Errors carry the "CRIER_X: message" shape the library maps back to CrierError.

-- Time-bounded scans of the log (events list --since, replay --from TIME, prune) read this BRIN
-- index: a few pages for millions of rows, and nearly free for publishers to maintain because
-- created_at grows with the table.
CREATE INDEX events_created_at_brin ON crier.events USING brin (created_at);
--> statement-breakpoint

-- Views -------------------------------------------------------------------------------------------
-- One row per event x delivery; an event no subscription received appears once, with NULL delivery
-- columns. status is state with "retrying" told apart from a first "pending".
CREATE VIEW crier.event_history AS
SELECT e.id AS event_id, e.uuid AS event_uuid, e.topic, e.key, e.payload, e.headers,
       e.created_at AS published_at,
       d.id AS delivery_id, d.subscription, d.state,
       CASE WHEN d.state = 'pending' AND d.attempts > 0 THEN 'retrying' ELSE d.state END AS status,
       d.attempts, d.available_at, d.worker, d.locked_until, d.last_error, d.last_error_stack,
       d.errors, d.created_at AS queued_at, d.started_at, d.finished_at, d.updated_at
FROM crier.events e
LEFT JOIN crier.deliveries d ON d.event_id = e.id;
--> statement-breakpoint
CREATE VIEW crier.dead_letters AS
SELECT d.id AS delivery_id, d.subscription, d.event_id, e.uuid AS event_uuid, e.topic, e.key,
       d.attempts, d.last_error, d.last_error_stack, d.errors, d.worker,
       e.created_at AS published_at, d.finished_at AS died_at, e.payload, e.headers
FROM crier.deliveries d
JOIN crier.events e ON e.id = d.event_id
WHERE d.state = 'dead';
--> statement-breakpoint
-- The numbers `crier status` prints. pending and retrying are disjoint: pending deliveries have
-- never been attempted (or were requeued), retrying ones wait for another attempt. lag is how long
-- the oldest due delivery has been waiting (NULL when nothing is due): a retry scheduled for later
-- is not lag. done is counted by a scan of the subscription's deliveries: prune keeps it cheap.
CREATE VIEW crier.subscription_stats AS
SELECT s.name AS subscription, s.topics, s.paused,
       coalesce(c.pending, 0) AS pending,
       coalesce(c.running, 0) AS running,
       coalesce(c.retrying, 0) AS retrying,
       coalesce(c.dead, 0) AS dead,
       coalesce(c.done, 0) AS done,
       c.oldest_pending_at,
       now() - c.oldest_due_at AS lag,
       extract(epoch FROM now() - c.oldest_due_at)::double precision AS lag_seconds
FROM crier.subscriptions s
LEFT JOIN (
  SELECT d.subscription,
         count(*) FILTER (WHERE d.state = 'pending' AND d.attempts = 0) AS pending,
         count(*) FILTER (WHERE d.state = 'pending' AND d.attempts > 0) AS retrying,
         count(*) FILTER (WHERE d.state = 'running') AS running,
         count(*) FILTER (WHERE d.state = 'dead') AS dead,
         count(*) FILTER (WHERE d.state = 'done') AS done,
         min(d.created_at) FILTER (WHERE d.state = 'pending') AS oldest_pending_at,
         min(d.available_at) FILTER (WHERE d.state = 'pending' AND d.available_at <= now()) AS oldest_due_at
  FROM crier.deliveries d
  GROUP BY d.subscription
) c ON c.subscription = s.name;
--> statement-breakpoint

-- Shared checks -----------------------------------------------------------------------------------
CREATE FUNCTION crier.assert_subscription(p_subscription text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM crier.subscriptions WHERE name = p_subscription) THEN
    RAISE EXCEPTION 'CRIER_UNKNOWN_SUBSCRIPTION: no subscription %', coalesce(quote_literal(p_subscription), 'NULL')
      USING ERRCODE = 'P0002';
  END IF;
END $$;
--> statement-breakpoint
CREATE FUNCTION crier.assert_pattern(p_pattern text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF p_pattern IS NOT NULL AND NOT crier.topic_pattern_valid(p_pattern) THEN
    RAISE EXCEPTION 'CRIER_INVALID_PATTERN: % is not a valid topic pattern (dot-separated segments, each a word, "*" or "#")',
      quote_literal(p_pattern) USING ERRCODE = '22023';
  END IF;
END $$;
--> statement-breakpoint

-- Dead letters ------------------------------------------------------------------------------------
-- The dead deliveries matching every given filter (NULL = no filter); since/until bound the time
-- the delivery died, error is a case-insensitive substring of the last error. A plain SQL function,
-- so the planner inlines it and ORDER BY / LIMIT reach the indexes.
CREATE FUNCTION crier.find_dead(
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
--> statement-breakpoint
-- Moves dead deliveries back to pending: attempts reset, due now, the subscription's policies
-- unchanged (they live on the subscription). Only rows still dead are updated, and workers never
-- write dead rows, so it is safe while workers run and two operators cannot requeue a row twice.
-- The error history is kept, with a note of the requeue. Returns the deliveries moved (or, with
-- p_dry_run, that would move), in id order, at most p_limit of them: callers with many rows loop
-- with p_after_id = the last id returned until none come back, one short transaction per batch (a
-- delivery that dies again meanwhile has an id already passed, so it is not requeued in a loop).
--   select * from crier.requeue(p_subscription => 'billing', p_error => 'timeout');
--   select count(*) from crier.requeue(p_all_dead => true);
CREATE FUNCTION crier.requeue(
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
--> statement-breakpoint

-- Replay ------------------------------------------------------------------------------------------
-- Queues past events again for one subscription (to rebuild a projection, or after a bug fix): the
-- events in the id and time range that match the subscription's own patterns (and p_topic, when
-- given). An event whose earlier delivery to this subscription is still pending or running is
-- skipped, so it is never queued twice at once; an advisory lock makes concurrent replays of one
-- subscription take turns. A replayed event gets a new delivery row, so history keeps both.
-- Returns one row per event examined (queued = false: skipped), at most p_limit of them, in id order:
-- callers with a large range loop from the last id returned.
--   select count(*) filter (where queued) from crier.replay('projection', p_from_time => now() - interval '7 days');
CREATE FUNCTION crier.replay(
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

  RETURN QUERY
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
             WHERE d.event_id = c.id AND d.subscription = p_subscription AND d.state IN ('pending', 'running')
           ) AS free
    FROM candidates c
  ), inserted AS (
    INSERT INTO crier.deliveries (event_id, subscription)
    SELECT x.id, p_subscription FROM examined x
    WHERE x.free AND NOT p_dry_run
    ORDER BY x.id
    RETURNING 1
  )
  SELECT x.id, x.topic, x.free FROM examined x ORDER BY x.id;

  IF NOT p_dry_run THEN
    PERFORM crier.wake(ARRAY[p_subscription]);
  END IF;
END $$;
--> statement-breakpoint

-- Pruning -----------------------------------------------------------------------------------------
-- Both prune functions walk the table in primary-key order, p_batch rows at a time from p_after_id,
-- and delete within that window only: each call is one short statement that locks only rows nobody
-- else writes (finished deliveries, unreferenced events). They return the rows deleted (or, with
-- p_dry_run, that would be) and the last id examined; last_id is NULL when the walk is over, which
-- is as soon as a window holds only rows newer than the cutoff (ids grow with time).

-- Finished deliveries (done, and dead too with p_dead) that finished before p_before.
CREATE FUNCTION crier.prune_deliveries(
  p_before timestamptz,
  p_dead boolean DEFAULT false,
  p_after_id bigint DEFAULT 0,
  p_batch integer DEFAULT 5000,
  p_dry_run boolean DEFAULT false
) RETURNS TABLE (deleted bigint, last_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_last bigint;
  v_oldest timestamptz;
  v_deleted bigint;
BEGIN
  IF p_before IS NULL OR p_batch IS NULL OR p_batch < 1 THEN
    RAISE EXCEPTION 'CRIER_INVALID_OPTION: prune_deliveries needs a cutoff time and a batch size of at least 1'
      USING ERRCODE = '22023';
  END IF;
  SELECT max(w.id), min(w.created_at) INTO v_last, v_oldest
  FROM (SELECT d.id, d.created_at FROM crier.deliveries d
        WHERE d.id > coalesce(p_after_id, 0) ORDER BY d.id LIMIT p_batch) w;
  IF v_last IS NULL OR v_oldest >= p_before THEN
    RETURN QUERY SELECT 0::bigint, NULL::bigint;
    RETURN;
  END IF;
  IF p_dry_run THEN
    SELECT count(*) INTO v_deleted FROM crier.deliveries d
    WHERE d.id > coalesce(p_after_id, 0) AND d.id <= v_last
      AND (d.state = 'done' OR (p_dead AND d.state = 'dead')) AND d.finished_at < p_before;
  ELSE
    WITH gone AS (
      DELETE FROM crier.deliveries d
      WHERE d.id > coalesce(p_after_id, 0) AND d.id <= v_last
        AND (d.state = 'done' OR (p_dead AND d.state = 'dead')) AND d.finished_at < p_before
      RETURNING 1
    )
    SELECT count(*) INTO v_deleted FROM gone;
  END IF;
  RETURN QUERY SELECT v_deleted, v_last;
END $$;
--> statement-breakpoint
-- Events published before p_before that no delivery refers to any more (prune deliveries first).
CREATE FUNCTION crier.prune_events(
  p_before timestamptz,
  p_after_id bigint DEFAULT 0,
  p_batch integer DEFAULT 5000,
  p_dry_run boolean DEFAULT false
) RETURNS TABLE (deleted bigint, last_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_last bigint;
  v_oldest timestamptz;
  v_deleted bigint;
BEGIN
  IF p_before IS NULL OR p_batch IS NULL OR p_batch < 1 THEN
    RAISE EXCEPTION 'CRIER_INVALID_OPTION: prune_events needs a cutoff time and a batch size of at least 1'
      USING ERRCODE = '22023';
  END IF;
  SELECT max(w.id), min(w.created_at) INTO v_last, v_oldest
  FROM (SELECT e.id, e.created_at FROM crier.events e
        WHERE e.id > coalesce(p_after_id, 0) ORDER BY e.id LIMIT p_batch) w;
  IF v_last IS NULL OR v_oldest >= p_before THEN
    RETURN QUERY SELECT 0::bigint, NULL::bigint;
    RETURN;
  END IF;
  IF p_dry_run THEN
    SELECT count(*) INTO v_deleted FROM crier.events e
    WHERE e.id > coalesce(p_after_id, 0) AND e.id <= v_last AND e.created_at < p_before
      AND NOT EXISTS (SELECT 1 FROM crier.deliveries d WHERE d.event_id = e.id);
  ELSE
    WITH gone AS (
      DELETE FROM crier.events e
      WHERE e.id > coalesce(p_after_id, 0) AND e.id <= v_last AND e.created_at < p_before
        AND NOT EXISTS (SELECT 1 FROM crier.deliveries d WHERE d.event_id = e.id)
      RETURNING 1
    )
    SELECT count(*) INTO v_deleted FROM gone;
  END IF;
  RETURN QUERY SELECT v_deleted, v_last;
END $$;
--> statement-breakpoint
-- For SQL users and cron jobs: both walks, committing after every batch (so run it with CALL
-- outside an explicit transaction).  CALL crier.prune(interval '30 days');
CREATE PROCEDURE crier.prune(
  p_older_than interval,
  p_dead boolean DEFAULT false,
  p_events boolean DEFAULT false,
  p_batch integer DEFAULT 5000,
  INOUT deleted_deliveries bigint DEFAULT 0,
  INOUT deleted_events bigint DEFAULT 0
)
LANGUAGE plpgsql AS $$
DECLARE
  v_before timestamptz := now() - p_older_than;
  v_after bigint := 0;
  v_deleted bigint;
BEGIN
  deleted_deliveries := 0;
  deleted_events := 0;
  LOOP
    SELECT p.deleted, p.last_id INTO v_deleted, v_after
    FROM crier.prune_deliveries(v_before, p_dead, v_after, p_batch) p;
    deleted_deliveries := deleted_deliveries + v_deleted;
    COMMIT;
    EXIT WHEN v_after IS NULL;
  END LOOP;
  v_after := 0;
  WHILE p_events LOOP
    SELECT p.deleted, p.last_id INTO v_deleted, v_after
    FROM crier.prune_events(v_before, v_after, p_batch) p;
    deleted_events := deleted_events + v_deleted;
    COMMIT;
    EXIT WHEN v_after IS NULL;
  END LOOP;
END $$;
--> statement-breakpoint

-- Subscriptions -----------------------------------------------------------------------------------
-- Pausing stops claims (crier.claim returns nothing for a paused subscription); deliveries keep
-- accumulating, and deliveries already running finish. Returns whether anything changed.
CREATE FUNCTION crier.pause_subscription(p_subscription text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM crier.assert_subscription(p_subscription);
  UPDATE crier.subscriptions SET paused = true, updated_at = now()
  WHERE name = p_subscription AND NOT paused;
  RETURN FOUND;
END $$;
--> statement-breakpoint
CREATE FUNCTION crier.resume_subscription(p_subscription text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM crier.assert_subscription(p_subscription);
  UPDATE crier.subscriptions SET paused = false, updated_at = now()
  WHERE name = p_subscription AND paused;
  IF FOUND THEN
    PERFORM crier.wake(ARRAY[p_subscription]);
    RETURN true;
  END IF;
  RETURN false;
END $$;
--> statement-breakpoint
-- Removes a subscription and every delivery it has (its history included; the events stay).
-- Refuses while deliveries are pending or running, unless p_force. Stop the workers that declare it
-- first: a worker starting again declares it again.
CREATE FUNCTION crier.remove_subscription(p_subscription text, p_force boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_pending bigint;
  v_running bigint;
  v_deleted bigint;
BEGIN
  PERFORM 1 FROM crier.subscriptions WHERE name = p_subscription FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM crier.assert_subscription(p_subscription);
  END IF;
  SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'running')
  INTO v_pending, v_running
  FROM crier.deliveries WHERE subscription = p_subscription AND state IN ('pending', 'running');
  IF v_pending + v_running > 0 AND NOT coalesce(p_force, false) THEN
    RAISE EXCEPTION 'CRIER_SUBSCRIPTION_BUSY: subscription % still has % pending and % running deliveries; let them finish, or force the removal (they are deleted unhandled)',
      quote_literal(p_subscription), v_pending, v_running USING ERRCODE = '55006';
  END IF;
  DELETE FROM crier.subscriptions WHERE name = p_subscription;
  DELETE FROM crier.parked_workers WHERE subscription = p_subscription;
  WITH gone AS (DELETE FROM crier.deliveries WHERE subscription = p_subscription RETURNING 1)
  SELECT count(*) INTO v_deleted FROM gone;
  RETURN v_deleted;
END $$;
