-- Pruning: deleting what is finished (`crier prune`), and the retention of idempotency keys and
-- processed marks.
--
-- Both prune functions walk the table in primary-key order, p_batch rows at a time from p_after_id,
-- and delete within that window only: each call is one short statement that locks only rows nobody
-- else writes (finished deliveries, unreferenced events). They return the rows deleted (or, with
-- p_dry_run, that would be) and the last id examined; last_id is NULL when the walk is over, which
-- is as soon as a window holds only rows newer than the cutoff (ids grow with time).

-- Finished deliveries (done, and dead too with p_dead) that finished before p_before.
CREATE OR REPLACE FUNCTION crier.prune_deliveries(
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

-- Events published before p_before that no delivery refers to any more (prune deliveries first).
CREATE OR REPLACE FUNCTION crier.prune_events(
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

-- For SQL users and cron jobs: both walks, committing after every batch (so run it with CALL
-- outside an explicit transaction).  CALL crier.prune(interval '30 days');
CREATE OR REPLACE PROCEDURE crier.prune(
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

-- Forgets idempotency keys older than the retention window; returns how many.
CREATE OR REPLACE FUNCTION crier.prune_idempotency_keys(p_older_than interval DEFAULT interval '7 days')
RETURNS integer
LANGUAGE sql AS $$
  WITH gone AS (DELETE FROM crier.idempotency_keys WHERE created_at < now() - p_older_than RETURNING 1)
  SELECT count(*)::integer FROM gone
$$;

-- Forgets processed marks (crier.mark_processed) older than the retention window; returns how many.
CREATE OR REPLACE FUNCTION crier.prune_processed(p_older_than interval DEFAULT interval '30 days') RETURNS integer
LANGUAGE sql AS $$
  WITH gone AS (DELETE FROM crier.processed WHERE at < now() - p_older_than RETURNING 1)
  SELECT count(*)::integer FROM gone
$$;
