-- Operator actions on subscriptions (what `crier subscriptions` and the admin API call), and the
-- checks every operator function shares. Errors carry the "CRIER_X: message" shape the library
-- maps back to CrierError.

CREATE OR REPLACE FUNCTION crier.assert_subscription(p_subscription text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM crier.subscriptions WHERE name = p_subscription) THEN
    RAISE EXCEPTION 'CRIER_UNKNOWN_SUBSCRIPTION: no subscription %', coalesce(quote_literal(p_subscription), 'NULL')
      USING ERRCODE = 'P0002';
  END IF;
END $$;

CREATE OR REPLACE FUNCTION crier.assert_pattern(p_pattern text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF p_pattern IS NOT NULL AND NOT crier.topic_pattern_valid(p_pattern) THEN
    RAISE EXCEPTION 'CRIER_INVALID_PATTERN: % is not a valid topic pattern (dot-separated segments, each a word, "*" or "#")',
      quote_literal(p_pattern) USING ERRCODE = '22023';
  END IF;
END $$;

-- Declares a subscription ahead of its workers (from a migration, the CLI or code), so that events
-- published before any worker starts are delivered to it: creates it, or brings an existing one to
-- the given topics and options. An option left NULL keeps its current value (the table's default
-- for a new subscription); `paused` is never touched. Idempotent. Changing a subscription's topics
-- and policies is an operator's act: workers create a missing subscription but never change one
-- (src/subscriptions.ts), and a worker role has no UPDATE right on the table (roles.sql).
-- p_history: 'full' keeps every delivery's row; 'failures' keeps only the deliveries that did not
-- succeed at their first attempt (crier.complete, deliveries/ack.sql). Switching applies to the next
-- acks: rows already kept stay until pruned.
-- Returns 'created', 'updated' or 'unchanged'.
--   select crier.create_subscription('billing', '{order.*}', p_max_attempts => 10);
--   select crier.create_subscription('search-index', '{product.#}', p_history => 'failures');
-- The signature gained p_history: drop the eight-argument form a database may still have.
DROP FUNCTION IF EXISTS crier.create_subscription(text, text[], integer, integer, integer, integer, boolean, text);
CREATE OR REPLACE FUNCTION crier.create_subscription(
  p_name text,
  p_topics text[],
  p_max_attempts integer DEFAULT NULL,
  p_backoff_base_ms integer DEFAULT NULL,
  p_backoff_max_ms integer DEFAULT NULL,
  p_lease_ms integer DEFAULT NULL,
  p_ordered boolean DEFAULT NULL,
  p_ordered_on_dead text DEFAULT NULL,
  p_history text DEFAULT NULL
) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  v_pattern text;
  v_created boolean;
  v_base integer;
  v_max integer;
BEGIN
  IF p_name IS NULL OR p_name !~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$' THEN
    RAISE EXCEPTION 'CRIER_INVALID_OPTION: subscription name % is not valid: 1-100 letters, digits, "_", "." or "-"',
      coalesce(quote_literal(left(p_name, 120)), 'NULL') USING ERRCODE = '22023';
  END IF;
  IF p_topics IS NULL OR cardinality(p_topics) = 0 OR array_position(p_topics, NULL) IS NOT NULL THEN
    RAISE EXCEPTION 'CRIER_INVALID_OPTION: subscription %: topics must be a non-empty array of patterns', quote_literal(p_name)
      USING ERRCODE = '22023';
  END IF;
  FOREACH v_pattern IN ARRAY p_topics LOOP
    PERFORM crier.assert_pattern(v_pattern);
  END LOOP;
  IF p_max_attempts < 1 THEN
    RAISE EXCEPTION 'CRIER_INVALID_OPTION: subscription %: max attempts must be at least 1, got %', quote_literal(p_name), p_max_attempts
      USING ERRCODE = '22023';
  END IF;
  IF p_lease_ms < 100 THEN
    RAISE EXCEPTION 'CRIER_INVALID_OPTION: subscription %: the lease must be at least 100 ms, got % ms', quote_literal(p_name), p_lease_ms
      USING ERRCODE = '22023';
  END IF;
  IF p_ordered_on_dead NOT IN ('block', 'skip') THEN
    RAISE EXCEPTION 'CRIER_INVALID_OPTION: subscription %: ordered_on_dead is ''block'' or ''skip'', got %', quote_literal(p_name),
      quote_literal(p_ordered_on_dead) USING ERRCODE = '22023';
  END IF;
  IF p_history NOT IN ('full', 'failures') THEN
    RAISE EXCEPTION 'CRIER_INVALID_OPTION: subscription %: history is ''full'' (keep every delivery) or ''failures'' (keep only deliveries that did not succeed at their first attempt), got %',
      quote_literal(p_name), quote_literal(p_history) USING ERRCODE = '22023';
  END IF;

  INSERT INTO crier.subscriptions (name, topics) VALUES (p_name, p_topics) ON CONFLICT (name) DO NOTHING;
  v_created := FOUND;
  SELECT coalesce(p_backoff_base_ms, s.backoff_base_ms), coalesce(p_backoff_max_ms, s.backoff_max_ms) INTO v_base, v_max
  FROM crier.subscriptions s WHERE s.name = p_name FOR UPDATE;
  IF v_base < 0 OR v_max < v_base THEN
    RAISE EXCEPTION 'CRIER_INVALID_OPTION: subscription %: backoff must be 0 <= base <= max, got base % ms and max % ms',
      quote_literal(p_name), v_base, v_max USING ERRCODE = '22023';
  END IF;
  UPDATE crier.subscriptions s
  SET topics = p_topics, max_attempts = coalesce(p_max_attempts, s.max_attempts), backoff_base_ms = v_base,
      backoff_max_ms = v_max, lease_ms = coalesce(p_lease_ms, s.lease_ms), ordered = coalesce(p_ordered, s.ordered),
      ordered_on_dead = coalesce(p_ordered_on_dead, s.ordered_on_dead), history = coalesce(p_history, s.history),
      updated_at = now()
  WHERE s.name = p_name
    AND (s.topics, s.max_attempts, s.backoff_base_ms, s.backoff_max_ms, s.lease_ms, s.ordered, s.ordered_on_dead, s.history)
        IS DISTINCT FROM (p_topics, coalesce(p_max_attempts, s.max_attempts), v_base, v_max, coalesce(p_lease_ms, s.lease_ms),
                          coalesce(p_ordered, s.ordered), coalesce(p_ordered_on_dead, s.ordered_on_dead),
                          coalesce(p_history, s.history));
  RETURN CASE WHEN v_created THEN 'created' WHEN FOUND THEN 'updated' ELSE 'unchanged' END;
END $$;

-- Pausing stops claims (crier.claim returns nothing for a paused subscription); deliveries keep
-- accumulating, and deliveries already running finish. Returns whether anything changed.
CREATE OR REPLACE FUNCTION crier.pause_subscription(p_subscription text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM crier.assert_subscription(p_subscription);
  UPDATE crier.subscriptions SET paused = true, updated_at = now()
  WHERE name = p_subscription AND NOT paused;
  RETURN FOUND;
END $$;

CREATE OR REPLACE FUNCTION crier.resume_subscription(p_subscription text) RETURNS boolean
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

-- Removes a subscription and every delivery it has (its history included; the events stay).
-- Refuses while deliveries are pending or running, unless p_force. Stop the workers that run it
-- first: a worker starting again creates it again.
CREATE OR REPLACE FUNCTION crier.remove_subscription(p_subscription text, p_force boolean DEFAULT false)
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
