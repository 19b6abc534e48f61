-- Pruning: deleting what is finished (`crier prune`), and the retention of idempotency keys and
-- processed marks.
--
-- Both prune functions walk the table in primary-key order, p_batch rows at a time from p_after_id,
-- and delete within that window only: each call is one short statement that locks only rows nobody
-- else writes (finished deliveries, unreferenced events). They return the rows deleted (or, with
-- p_dry_run, that would be) and the last id examined; last_id is NULL when the walk is over, which
-- is as soon as a window holds only rows newer than the cutoff (ids grow with time).

-- The walk both share: the window of p_batch rows of p_table after p_after_id and, within it, the
-- rows p_prunable says may go (a condition on alias t, with $3 = p_before and $4 = p_dead), deleted
-- or (p_dry_run) counted.
CREATE OR REPLACE FUNCTION crier.prune_walk(
  p_caller text, p_table regclass, p_prunable text,
  p_before timestamptz, p_dead boolean, p_after_id bigint, p_batch integer, p_dry_run boolean
) RETURNS TABLE (deleted bigint, last_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_last bigint;
  v_oldest timestamptz;
  v_deleted bigint;
BEGIN
  IF p_before IS NULL OR p_batch IS NULL OR p_batch < 1 THEN
    RAISE EXCEPTION 'CRIER_INVALID_OPTION: % needs a cutoff time and a batch size of at least 1', p_caller
      USING ERRCODE = '22023';
  END IF;
  EXECUTE format('SELECT max(w.id), min(w.created_at) FROM (SELECT t.id, t.created_at FROM %s t
                  WHERE t.id > $1 ORDER BY t.id LIMIT $2) w', p_table)
  INTO v_last, v_oldest USING coalesce(p_after_id, 0), p_batch;
  IF v_last IS NULL OR v_oldest >= p_before THEN
    RETURN QUERY SELECT 0::bigint, NULL::bigint;
    RETURN;
  END IF;
  EXECUTE format(CASE WHEN p_dry_run THEN 'SELECT count(*) FROM %1$s t WHERE t.id > $1 AND t.id <= $2 AND (%2$s)'
                      ELSE 'WITH gone AS (DELETE FROM %1$s t WHERE t.id > $1 AND t.id <= $2 AND (%2$s) RETURNING 1)
                            SELECT count(*) FROM gone' END,
                 p_table, p_prunable)
  INTO v_deleted USING coalesce(p_after_id, 0), v_last, p_before, p_dead;
  RETURN QUERY SELECT v_deleted, v_last;
END $$;

-- Finished deliveries (done, and dead too with p_dead) that finished before p_before.
CREATE OR REPLACE FUNCTION crier.prune_deliveries(
  p_before timestamptz,
  p_dead boolean DEFAULT false,
  p_after_id bigint DEFAULT 0,
  p_batch integer DEFAULT 5000,
  p_dry_run boolean DEFAULT false
) RETURNS TABLE (deleted bigint, last_id bigint)
LANGUAGE sql AS $$
  SELECT * FROM crier.prune_walk('prune_deliveries', 'crier.deliveries',
    $c$(t.state = 'done' OR ($4 AND t.state = 'dead')) AND t.finished_at < $3$c$,
    p_before, p_dead, p_after_id, p_batch, p_dry_run)
$$;

-- Events published before p_before that no delivery refers to any more (prune deliveries first).
-- Under history 'failures' an event every subscription handled at its first attempt has no delivery
-- left as soon as it is handled: the log keeps it until this prunes it by age.
CREATE OR REPLACE FUNCTION crier.prune_events(
  p_before timestamptz,
  p_after_id bigint DEFAULT 0,
  p_batch integer DEFAULT 5000,
  p_dry_run boolean DEFAULT false
) RETURNS TABLE (deleted bigint, last_id bigint)
LANGUAGE sql AS $$
  SELECT * FROM crier.prune_walk('prune_events', 'crier.events',
    $c$t.created_at < $3 AND NOT EXISTS (SELECT 1 FROM crier.deliveries d WHERE d.event_id = t.id)$c$,
    p_before, false, p_after_id, p_batch, p_dry_run)
$$;

-- Whole partitions first (partitions.sql): drops the partitions of p_table ('deliveries' or
-- 'events') that take no new rows and in which every row may go, as the walks below would delete
-- them row by row. A deliveries partition goes when all its deliveries are done (or dead, with
-- p_dead) and finished before p_before; an events partition when all its events are older than
-- p_before and no delivery refers to one (prune deliveries first). What can still change (pending,
-- waiting, running and dead deliveries, the deliveries of the events) is probed through small
-- indexes first, so a partition a dead letter keeps costs no scan; the scan for what never changes
-- again takes no lock; the probes run again under the lock DROP takes on the whole table, which
-- therefore blocks workers for milliseconds only. That lock waits at most a
-- second (a long transaction on the table); the partition is then left to the walks, with a notice.
-- Runs as its owner, who alone may drop a table; operators may call it. One partition per call,
-- so that each DROP commits (and frees the table) on its own: it examines the partitions after the
-- id p_after, stops after dropping one and returns its upper bound as last_id, or NULL when none
-- is left; with p_dry_run it counts them all in one call (no lock).
CREATE OR REPLACE FUNCTION crier.prune_partitions(
  p_table text, p_before timestamptz, p_dead boolean DEFAULT false, p_after bigint DEFAULT NULL,
  p_dry_run boolean DEFAULT false
) RETURNS TABLE (dropped integer, deleted bigint, last_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '1s' AS $$
DECLARE
  v_parent regclass;
  v_next bigint;
  v_part record;
  v_rows bigint;
  v_keep boolean;
  v_changing text;
BEGIN
  IF p_table IS NULL OR p_table NOT IN ('deliveries', 'events') OR p_before IS NULL THEN
    RAISE EXCEPTION 'CRIER_INVALID_OPTION: prune_partitions takes ''deliveries'' or ''events'' and a cutoff time, got %',
      coalesce(quote_literal(p_table), 'NULL') USING ERRCODE = '22023';
  END IF;
  v_parent := ('crier.' || p_table)::regclass;
  v_next := crier.next_id(v_parent);
  dropped := 0;
  deleted := 0;
  -- What can still change, through small indexes only: pending, waiting, running (leased) and kept
  -- dead deliveries of a partition, or any delivery of an events partition's events.
  v_changing := CASE p_table
    WHEN 'deliveries' THEN 'SELECT EXISTS (SELECT FROM %1$s t WHERE t.state = ''pending'') OR EXISTS (SELECT FROM %1$s t WHERE t.state = ''waiting'')
                            OR EXISTS (SELECT FROM %1$s t WHERE t.locked_until IS NOT NULL)
                            OR EXISTS (SELECT FROM %1$s t WHERE t.state = ''dead'' AND NOT ($2 AND t.finished_at < $1))'
    ELSE 'SELECT EXISTS (SELECT FROM crier.deliveries d WHERE d.event_id >= coalesce($3, d.event_id) AND d.event_id < $4)' END;
  FOR v_part IN SELECT p.* FROM crier.partitions(v_parent) p
                WHERE p.upper <= v_next AND p.upper > coalesce(p_after, p.upper - 1) LOOP
    -- First the index probes, so that a partition kept by a dead letter costs no scan at each prune.
    EXECUTE format(v_changing, v_part.partition) INTO v_keep USING p_before, p_dead, v_part.lower, v_part.upper;
    CONTINUE WHEN v_keep;
    IF p_table = 'deliveries' THEN
      EXECUTE format('SELECT count(*), coalesce(bool_or(NOT ((t.state = ''done'' OR ($2 AND t.state = ''dead'')) AND t.finished_at < $1)), false) FROM %s t',
                     v_part.partition) INTO v_rows, v_keep USING p_before, p_dead;
      CONTINUE WHEN v_keep;
    ELSE
      EXECUTE format('SELECT count(*), coalesce(bool_or(t.created_at >= $1), false) FROM %s t', v_part.partition)
        INTO v_rows, v_keep USING p_before;
      EXIT WHEN v_keep; -- the later partitions hold later events
    END IF;
    dropped := dropped + 1;
    deleted := deleted + v_rows;
    CONTINUE WHEN p_dry_run;
    BEGIN
      EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', v_parent);
      EXECUTE format(v_changing, v_part.partition) INTO v_keep USING p_before, p_dead, v_part.lower, v_part.upper;
      IF v_keep THEN -- changed since the probes: left to the walk, and the lock freed with this call
        dropped := dropped - 1;
        deleted := deleted - v_rows;
      ELSE
        EXECUTE format('DROP TABLE %s', v_part.partition);
      END IF;
      last_id := v_part.upper;
      RETURN NEXT;
      RETURN;
    EXCEPTION WHEN lock_not_available THEN
      dropped := dropped - 1;
      deleted := deleted - v_rows;
      RAISE NOTICE 'crier.prune_partitions: % is in use (its lock waited 1 s): partition % is left to the batched prune',
        v_parent, v_part.partition;
    END;
  END LOOP;
  RETURN NEXT;
END $$;

-- For SQL users and cron jobs: whole partitions, then both walks, committing after every batch (so run it with CALL
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
  v_after bigint;
  v_deleted bigint;
BEGIN
  deleted_deliveries := 0;
  deleted_events := 0;
  v_after := NULL;
  LOOP
    SELECT p.deleted, p.last_id INTO v_deleted, v_after FROM crier.prune_partitions('deliveries', v_before, p_dead, v_after) p;
    deleted_deliveries := deleted_deliveries + v_deleted;
    COMMIT;
    EXIT WHEN v_after IS NULL;
  END LOOP;
  v_after := 0;
  LOOP
    SELECT p.deleted, p.last_id INTO v_deleted, v_after
    FROM crier.prune_deliveries(v_before, p_dead, v_after, p_batch) p;
    deleted_deliveries := deleted_deliveries + v_deleted;
    COMMIT;
    EXIT WHEN v_after IS NULL;
  END LOOP;
  v_after := NULL;
  WHILE p_events LOOP
    SELECT p.deleted, p.last_id INTO v_deleted, v_after FROM crier.prune_partitions('events', v_before, false, v_after) p;
    deleted_events := deleted_events + v_deleted;
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
