-- An idle worker's cycle in fewer round trips, and no wake-up lost to a producer that was mid-commit
-- when the worker parked (issue 7, latency).
--
-- After each event a worker used to make five round trips: the claim that got it, a claim that came
-- back empty, crier.park, the re-check claim, crier.next_due_in, then sleep. An event committed
-- meanwhile waited for them. This overload of crier.claim does what an empty claim leads to in the
-- same round trip: it parks when asked (the claim that first comes back empty) and says when the
-- next pending delivery falls due (the re-check, before the worker sleeps): three round trips.
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
-- snapshot does not list running transactions newer than the last one that ended.) Transaction ids
-- are cluster-wide, so unrelated writers cost a few extra re-checks, never a missed event.
--
-- It calls crier.claim, crier.park and crier.next_due_in rather than repeating them, so it follows
-- whatever they become. An overload of claim, so that crier.create_roles grants it to workers with
-- claim (by name); it has no defaults, so calls of the five-argument claim never resolve to it.
CREATE FUNCTION crier.claim(
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
--> statement-breakpoint
-- Roles that crier.create_roles made before this migration may call the five-argument claim: they
-- get this one too (create_roles grants every claim by name from now on).
DO $$
DECLARE
  v_role name;
BEGIN
  FOR v_role IN
    SELECT DISTINCT a.grantee::regrole::name
    FROM pg_proc p CROSS JOIN LATERAL aclexplode(p.proacl) a
    WHERE p.oid = 'crier.claim(text, text, integer, bigint[], integer[])'::regprocedure
      AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0
  LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION crier.claim(text, text, integer, bigint[], integer[], boolean, bigint[]) TO %I', v_role);
  END LOOP;
END $$;
