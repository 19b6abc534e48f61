-- An idle worker's cycle in fewer round trips (issue 7, latency). After each event a worker used to
-- make five: the claim that got it, a claim that came back empty, crier.park, the re-check claim,
-- crier.next_due_in, then sleep. An event committed meanwhile waited for them. This overload of
-- crier.claim does what an empty claim leads to in the same round trip: it parks when asked (the
-- claim that first comes back empty) and says when the next pending delivery falls due (the
-- re-check, before the worker sleeps): three round trips.
--
-- The park commits with the empty claim, and the worker's re-check is a claim of its own
-- transaction, after that commit: as before, a producer that committed before the park was visible
-- is found by the re-check, and one that commits later sees the park and notifies (0009).
--
-- It calls crier.claim, crier.park and crier.next_due_in rather than repeating them, so it follows
-- whatever they become. An overload of claim, so that crier.create_roles grants it to workers with
-- claim (by name); p_park has no default, so calls of the five-argument claim never resolve to it.
CREATE FUNCTION crier.claim(
  p_subscription text, p_worker text, p_limit integer,
  p_done_ids bigint[], p_done_attempts integer[], p_park boolean
)
RETURNS TABLE (
  delivery_id bigint, attempt integer, locked_until timestamptz,
  event_id bigint, event_uuid uuid, topic text, key text, payload jsonb, headers jsonb,
  created_at timestamptz, next_due_in double precision
)
LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY
  SELECT c.*, NULL::double precision
  FROM crier.claim(p_subscription, p_worker, p_limit, p_done_ids, p_done_attempts) c;
  IF FOUND THEN
    RETURN;
  END IF;
  -- Nothing claimed: one row with no delivery, only the milliseconds until the next pending
  -- delivery is due (NULL: none pending).
  IF p_park THEN
    PERFORM crier.park(p_worker, ARRAY[p_subscription]);
  END IF;
  RETURN QUERY
  SELECT NULL::bigint, NULL::integer, NULL::timestamptz, NULL::bigint, NULL::uuid, NULL::text,
         NULL::text, NULL::jsonb, NULL::jsonb, NULL::timestamptz, crier.next_due_in(p_subscription);
END $$;
