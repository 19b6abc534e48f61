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
-- Refuses while deliveries are pending or running, unless p_force. Stop the workers that declare it
-- first: a worker starting again declares it again.
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
