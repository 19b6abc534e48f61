-- Claiming: the worker's read path. A delivery's life (docs/delivery-states.md):
--   pending --claim--> running --complete--> done                      (deliveries/ack.sql)
--                      running --fail--> pending (retry at now() + backoff) | dead
--                      running --lease expired--> pending | dead       (deliveries/leases.sql)
--                      running --release (graceful shutdown)--> pending
--
-- claim reads only deliveries_pending_idx (its ORDER BY is that index's order), so its cost does
-- not grow with history; it picks its rows into an array first, so that the UPDATE and the join to
-- events are primary-key lookups whatever the statistics say (a hash join over the whole table was
-- chosen on a fresh table: 9 ms for 100 rows at 20k rows, growing with history).

-- Completes p_done (this worker's finished attempts; refused silently if their lease was lost,
-- as crier.complete does), then claims up to p_limit due deliveries of one subscription, oldest
-- first, with SKIP LOCKED. Each claim counts an attempt and takes a lease of lease_ms.
CREATE OR REPLACE FUNCTION crier.claim(
  p_subscription text, p_worker text, p_limit integer,
  p_done_ids bigint[] DEFAULT '{}', p_done_attempts integer[] DEFAULT '{}'
)
RETURNS TABLE (
  delivery_id bigint, attempt integer, locked_until timestamptz,
  event_id bigint, event_uuid uuid, topic text, key text, payload jsonb, headers jsonb,
  created_at timestamptz
)
LANGUAGE plpgsql AS $$
DECLARE
  v_lease interval;
  v_paused boolean;
  v_ids bigint[];
BEGIN
  IF cardinality(p_done_ids) > 0 THEN
    PERFORM crier.complete(p_worker, p_done_ids, p_done_attempts);
  END IF;
  SELECT s.lease_ms * interval '1 millisecond', s.paused INTO v_lease, v_paused
  FROM crier.subscriptions s WHERE s.name = p_subscription;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'CRIER_UNKNOWN_SUBSCRIPTION: no subscription %', quote_literal(p_subscription)
      USING ERRCODE = 'P0002';
  END IF;
  IF v_paused OR p_limit < 1 THEN
    RETURN;
  END IF;

  v_ids := ARRAY(
    SELECT d.id FROM crier.deliveries d
    WHERE d.subscription = p_subscription AND d.state = 'pending' AND d.available_at <= now()
    ORDER BY d.available_at, d.id
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED);
  IF cardinality(v_ids) = 0 THEN
    RETURN;
  END IF;

  RETURN QUERY
  WITH claimed AS (
    UPDATE crier.deliveries d
    SET state = 'running', attempts = d.attempts + 1, worker = p_worker,
        locked_until = now() + v_lease, started_at = now(), updated_at = now()
    WHERE d.id = ANY(v_ids)
    RETURNING d.id, d.attempts, d.locked_until, d.event_id
  ), claimed_events AS (
    -- Primary-key lookups, not a join the planner may turn into a scan of the whole log.
    SELECT e.* FROM crier.events e WHERE e.id = ANY(ARRAY(SELECT c.event_id FROM claimed c))
  )
  SELECT c.id, c.attempts, c.locked_until, e.id, e.uuid, e.topic, e.key, e.payload, e.headers,
         e.created_at
  FROM claimed c JOIN claimed_events e ON e.id = c.event_id
  ORDER BY c.id;
END $$;

-- Milliseconds until the next pending delivery of a subscription falls due (<= 0: due now; NULL:
-- nothing pending, or the subscription is paused), measured on the database clock so that worker
-- clocks never matter. An idle worker sleeps exactly that long; a paused subscription's sleeps until
-- crier.resume_subscription wakes it (or the worker's poll sees it due), rather than claiming
-- nothing over and over.
CREATE OR REPLACE FUNCTION crier.next_due_in(p_subscription text) RETURNS double precision
LANGUAGE sql STABLE AS $$
  SELECT extract(epoch FROM min(d.available_at) - now()) * 1000 FROM crier.deliveries d
  WHERE d.subscription = p_subscription AND d.state = 'pending'
    AND NOT (SELECT s.paused FROM crier.subscriptions s WHERE s.name = p_subscription)
$$;

-- A claim, and what an empty claim leads to, in one round trip: an idle worker's cycle is three
-- round trips instead of five (claim, claim-and-park, re-check), and no wake-up is lost to a
-- producer that was mid-commit when the worker parked. It parks when asked (the claim that first
-- comes back empty) and says when the next pending delivery falls due (the re-check, before the
-- worker sleeps).
--
-- The park commits with the empty claim, and the worker's re-check is a claim of its own
-- transaction, after that commit: a producer that committed before the park was visible is found by
-- the re-check, and one that inserts its event after sees the park and notifies. Left over: a
-- producer that inserted its event before the park was visible (so decided not to notify) and
-- commits after the re-check. Its transaction has an id and is running when the re-check begins, so
-- the re-check also reports `running`: the ids of the transactions running then (NULL: none, so
-- nothing can be missed). The worker re-checks soon, passing them back as p_running, until a
-- re-check begins after all of them have ended: that re-check sees whatever they committed.
-- (Transaction ids come from pg_stat_activity, which every role may read, not from a snapshot: a
-- snapshot does not list running transactions newer than the last one that ended.) Only this
-- database's transactions count (no other can insert into its deliveries); unrelated writers in it
-- cost a few extra re-checks, never a missed event. The re-checks come at doubling intervals; once
-- they would be as far apart as the worker's poll, the worker stops re-checking on its own and
-- leaves the subscription to crier.worker_poll below, which sees any due delivery of a parked
-- subscription every poll interval: a producer still running by then costs at most one poll
-- interval of latency, as a lost NOTIFY does.
--
-- It calls crier.claim, crier.park and crier.next_due_in rather than repeating them. Before 0.1.0 it
-- was an overload of crier.claim; databases migrated then lose that overload here.
DROP FUNCTION IF EXISTS crier.claim(text, text, integer, bigint[], integer[], boolean, bigint[]);
CREATE OR REPLACE FUNCTION crier.claim_or_idle(
  p_subscription text, p_worker text, p_limit integer,
  p_done_ids bigint[], p_done_attempts integer[], p_park boolean, p_running bigint[]
)
RETURNS TABLE (
  delivery_id bigint, attempt integer, locked_until timestamptz,
  event_id bigint, event_uuid uuid, topic text, key text, payload jsonb, headers jsonb,
  created_at timestamptz, next_due_in double precision, running bigint[]
)
LANGUAGE plpgsql AS $$
DECLARE
  -- For a re-check (not parking): read before the claim's own statements, which therefore see
  -- every commit of a transaction that is not running any more.
  v_running bigint[] := CASE WHEN NOT p_park THEN ARRAY(
    SELECT a.backend_xid::text::bigint FROM pg_stat_get_activity(NULL) a
    WHERE a.backend_xid IS NOT NULL AND a.pid <> pg_backend_pid()
      AND a.datid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
      AND (p_running IS NULL OR a.backend_xid::text::bigint = ANY (p_running))) END;
BEGIN
  RETURN QUERY
  SELECT c.*, NULL::double precision, NULL::bigint[]
  FROM crier.claim(p_subscription, p_worker, p_limit, p_done_ids, p_done_attempts) c;
  IF FOUND THEN
    RETURN;
  END IF;
  -- Nothing claimed: one row with no delivery, only the milliseconds until the next pending
  -- delivery is due (NULL: none pending) and, for a re-check, whether to re-check again.
  IF p_park THEN
    PERFORM crier.park(p_worker, ARRAY[p_subscription]);
  END IF;
  RETURN QUERY
  SELECT NULL::bigint, NULL::integer, NULL::timestamptz, NULL::bigint, NULL::uuid, NULL::text,
         NULL::text, NULL::jsonb, NULL::jsonb, NULL::timestamptz, crier.next_due_in(p_subscription),
         CASE WHEN cardinality(v_running) > 0 THEN v_running END;
END $$;

-- Claims of several subscriptions of one worker in one round trip and one transaction: what
-- p_subscriptions[i] asks is a plain crier.claim when p_park[i] is NULL, else crier.claim_or_idle
-- with p_park[i] and p_running[i] (the text of its bigint[]), with the same meaning as one call
-- of it (one request's park and its re-check are never in the same call: the worker sends the
-- re-check after the park has committed). p_done (this worker's finished attempts) is completed
-- first. Rows carry the request's index (1-based) and are what that call would have returned. A
-- worker sends one request alone through crier.claim or crier.claim_or_idle; this is for requests
-- that came together.
CREATE OR REPLACE FUNCTION crier.claim_many(
  p_worker text, p_subscriptions text[], p_limits integer[], p_park boolean[], p_running text[],
  p_done_ids bigint[], p_done_attempts integer[]
)
RETURNS TABLE (
  request integer, delivery_id bigint, attempt integer, locked_until timestamptz,
  event_id bigint, event_uuid uuid, topic text, key text, payload jsonb, headers jsonb,
  created_at timestamptz, next_due_in double precision, running bigint[]
)
LANGUAGE plpgsql AS $$
BEGIN
  IF cardinality(p_done_ids) > 0 THEN
    PERFORM crier.complete(p_worker, p_done_ids, p_done_attempts);
  END IF;
  FOR i IN 1 .. coalesce(cardinality(p_subscriptions), 0) LOOP
    IF p_park[i] IS NULL THEN
      RETURN QUERY SELECT i, c.*, NULL::double precision, NULL::bigint[]
                   FROM crier.claim(p_subscriptions[i], p_worker, p_limits[i]) c;
    ELSE
      RETURN QUERY SELECT i, c.*
                   FROM crier.claim_or_idle(p_subscriptions[i], p_worker, p_limits[i], '{}', '{}', p_park[i],
                                            p_running[i]::bigint[]) c;
    END IF;
  END LOOP;
END $$;

-- The worker's periodic round trip (every pollInterval, idle or busy; one per worker process, not
-- one per subscription): adds partitions ahead of the ids when due (crier.extend_partitions,
-- partitions.sql), rescues expired leases (crier.rescue_expired, anyone's), and for the
-- subscriptions it has parked (p_parked) says whether its parked row is still there (a producer
-- that woke it deleted the row: if that NOTIFY was lost, the worker must park again) and when the
-- subscription's next pending delivery falls due (<= 0: due now, so a wake-up was missed or a
-- delayed delivery came due; NULL: none pending). It keeps those parked rows from expiring (a
-- minute before crier.park would drop them) with no write on the other polls. An idle worker's
-- subscriptions therefore cost one round trip per poll interval between them, whatever their
-- number. Rows come back one per parked subscription; with none parked, one row with only the
-- rescued count.
CREATE OR REPLACE FUNCTION crier.worker_poll(p_worker text, p_parked text[])
RETURNS TABLE (rescued integer, subscription text, parked boolean, next_due_in double precision)
LANGUAGE plpgsql AS $$
DECLARE
  v_rescued integer := crier.rescue_expired();
BEGIN
  PERFORM crier.extend_partitions();
  UPDATE crier.parked_workers p SET since = now()
  WHERE p.worker = p_worker AND p.subscription = ANY (p_parked) AND p.since < now() - interval '1 minute';
  RETURN QUERY
  SELECT v_rescued, s.name,
         EXISTS (SELECT 1 FROM crier.parked_workers p WHERE p.worker = p_worker AND p.subscription = s.name),
         crier.next_due_in(s.name)
  FROM unnest(p_parked) AS s(name);
  IF NOT FOUND THEN
    RETURN QUERY SELECT v_rescued, NULL::text, NULL::boolean, NULL::double precision;
  END IF;
END $$;
