-- Partitions: crier.events and crier.deliveries are partitioned by ranges of their ids, which grow
-- with time, crier.partitioning's rows_per_partition ids to a partition (migration 0005). Old
-- history then goes by dropping whole partitions (crier.prune_partitions, operator/prune.sql):
-- milliseconds, and no dead rows left for vacuum. Ranges of ids rather than of time, so that every
-- lookup by id (acks, claims' join to the event) reads one partition's primary key, and no key has
-- to carry a time. Partitions are named after their first id (events_p1000001).
--
-- New partitions are added ahead of the ids by crier.extend_partitions: at the commit of a
-- transaction that inserted a row whose id is a multiple of 1,000 (a deferred trigger, below:
-- Postgres cannot add a partition while an INSERT into the table is running), and from every
-- worker's poll. A default partition catches what no range takes (one transaction inserting more
-- than a whole partition's worth of ids), so a publish never fails for want of a partition; its
-- rows stay there until pruned in batches, and ranges added later start after them.

-- The range partitions of crier.events or crier.deliveries, oldest first (lower is NULL for the one
-- that starts at MINVALUE: the rows of a database migrated before partitioning).
CREATE OR REPLACE FUNCTION crier.partitions(p_parent regclass)
RETURNS TABLE (partition regclass, lower bigint, upper bigint)
LANGUAGE sql STABLE AS $$
  SELECT i.inhrelid::regclass, b.m[1]::bigint, b.m[2]::bigint
  FROM pg_inherits i
  JOIN pg_class c ON c.oid = i.inhrelid
  CROSS JOIN LATERAL (SELECT regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                          '^FOR VALUES FROM \((?:MINVALUE|''(-?\d+)'')\) TO \(''(-?\d+)''\)$') AS m) b
  WHERE i.inhparent = p_parent AND b.m IS NOT NULL
  ORDER BY b.m[2]::bigint
$$;

-- The id the next row of crier.events or crier.deliveries will get (its identity's start while none
-- was drawn: a database upgraded by migration 0005 starts where it was).
CREATE OR REPLACE FUNCTION crier.next_id(p_parent regclass) RETURNS bigint
LANGUAGE sql STABLE AS $$
  SELECT coalesce(pg_sequence_last_value(s.seqrelid) + s.seqincrement, s.seqstart)
  FROM pg_sequence s WHERE s.seqrelid = pg_get_serial_sequence(p_parent::text, 'id')::regclass
$$;

-- Adds the partition <parent>_<suffix> of p_parent for p_bounds ('DEFAULT', or 'FOR VALUES FROM
-- (a) TO (b)'): a table made like the parent, with the parent's indexes named after it
-- (events_pkey becomes events_p1001_pkey), then attached. ATTACH, unlike CREATE TABLE ... PARTITION
-- OF, leaves the parent open to reads and writes meanwhile (it takes SHARE UPDATE EXCLUSIVE).
CREATE OR REPLACE FUNCTION crier.add_partition(p_parent regclass, p_suffix text, p_bounds text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_table text := p_parent::text || '_' || p_suffix;
  v_base text := (SELECT c.relname FROM pg_class c WHERE c.oid = p_parent);
  v_index record;
BEGIN
  EXECUTE format('CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', v_table, p_parent);
  -- The primary key as a constraint (ATTACH takes only a constraint's index for the parent's).
  FOR v_index IN SELECT c.conname AS name, pg_get_constraintdef(c.oid) AS def FROM pg_constraint c
                 WHERE c.conrelid = p_parent AND c.contype IN ('p', 'u') LOOP
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', v_table,
                   v_base || '_' || p_suffix || substr(v_index.name, length(v_base) + 1), v_index.def);
  END LOOP;
  FOR v_index IN SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS def
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                 WHERE i.indrelid = p_parent AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid) LOOP
    EXECUTE replace(replace(v_index.def, format(' ON ONLY %s ', p_parent), format(' ON %s ', v_table)),
                    format(' INDEX %s ', v_index.name),
                    format(' INDEX %I ', v_base || '_' || p_suffix || substr(v_index.name, length(v_base) + 1)));
  END LOOP;
  EXECUTE format('ALTER TABLE %s ATTACH PARTITION %s %s', p_parent, v_table, p_bounds);
END $$;

-- Adds range partitions to crier.events and crier.deliveries until a whole partition lies ahead of
-- each table's next id; returns how many it added. Cheap when there is nothing to do (a read of
-- each sequence and of the catalog: 0.2 ms). Never waits: another session adding partitions, or a
-- lock it cannot get within a second (a long transaction on the table), makes it return 0 for now,
-- and the next poll tries again.
CREATE OR REPLACE FUNCTION crier.extend_partitions() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '1s' AS $$
DECLARE
  v_rows bigint := (SELECT p.rows_per_partition FROM crier.partitioning p);
  v_parent regclass;
  v_next bigint;
  v_upper bigint;
  v_added integer := 0;
BEGIN
  FOREACH v_parent IN ARRAY ARRAY['crier.events'::regclass, 'crier.deliveries'::regclass] LOOP
    v_next := crier.next_id(v_parent);
    SELECT max(p.upper) INTO v_upper FROM crier.partitions(v_parent) p;
    CONTINUE WHEN v_upper - v_next >= v_rows;
    IF NOT pg_try_advisory_xact_lock(hashtext('crier.extend_partitions')) THEN
      RETURN v_added;
    END IF;
    -- Rows the default partition caught (ids past every range) stay there: start above them.
    EXECUTE format('SELECT greatest($1, $2, (SELECT max(id) + 1 FROM %s_default))', v_parent)
      INTO v_upper USING v_upper, v_next;
    WHILE v_upper - v_next < v_rows LOOP
      PERFORM crier.add_partition(v_parent, 'p' || v_upper, format('FOR VALUES FROM (%s) TO (%s)', v_upper, v_upper + v_rows));
      v_upper := v_upper + v_rows;
      v_added := v_added + 1;
    END LOOP;
  END LOOP;
  RETURN v_added;
EXCEPTION WHEN lock_not_available THEN
  RETURN 0;
END $$;

-- Sets the ids per partition (crier.partitioning) for the partitions to come, and replaces the ones
-- already made ahead of the ids, still empty, with partitions of the new size; returns how many it
-- added. The replacement locks both tables (deliveries first, as claims do) for milliseconds. Where
-- the tables are busy (the lock not had within 5 s, or a deadlock with a claim or a publish), the
-- setting is kept, the ranges ahead keep their size, and a notice says so.
--   select crier.set_rows_per_partition(10000000);
CREATE OR REPLACE FUNCTION crier.set_rows_per_partition(p_rows bigint) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '5s' AS $$
DECLARE
  v_parent regclass;
  v_part record;
BEGIN
  IF p_rows IS NULL OR p_rows < 1000 THEN
    RAISE EXCEPTION 'CRIER_INVALID_OPTION: rows per partition must be at least 1000, got %', coalesce(p_rows::text, 'NULL')
      USING ERRCODE = '22023';
  END IF;
  UPDATE crier.partitioning SET rows_per_partition = p_rows;
  BEGIN
    LOCK TABLE crier.deliveries, crier.events IN ACCESS EXCLUSIVE MODE;
    FOREACH v_parent IN ARRAY ARRAY['crier.events'::regclass, 'crier.deliveries'::regclass] LOOP
      FOR v_part IN SELECT p.* FROM crier.partitions(v_parent) p WHERE p.lower >= crier.next_id(v_parent) LOOP
        EXECUTE format('DROP TABLE %s', v_part.partition);
      END LOOP;
    END LOOP;
    RETURN crier.extend_partitions();
  EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
    RAISE NOTICE 'rows per partition set to %; the ranges already made ahead keep their size (the tables are busy: %)', p_rows, SQLERRM;
    RETURN 0;
  END;
END $$;

-- At the commit of a transaction that inserted the 1,000th id, the 2,000th, ...: one check in a
-- thousand rows (0.2 ms when there is nothing to do), in the producer's own transaction, where no
-- INSERT runs any more. It must never fail that commit: a partition it could not add (a lock it
-- did not get within a second) is added by the next check, and any other error is only reported.
CREATE OR REPLACE FUNCTION crier.extend_partitions_at_commit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM crier.extend_partitions();
  RETURN NULL;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'could not add partitions ahead of the ids of %: % (the next check tries again)', TG_TABLE_NAME, SQLERRM;
  RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS events_extend_partitions ON crier.events;
CREATE CONSTRAINT TRIGGER events_extend_partitions AFTER INSERT ON crier.events
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.id % 1000 = 0)
EXECUTE FUNCTION crier.extend_partitions_at_commit();
DROP TRIGGER IF EXISTS deliveries_extend_partitions ON crier.deliveries;
CREATE CONSTRAINT TRIGGER deliveries_extend_partitions AFTER INSERT ON crier.deliveries
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.id % 1000 = 0)
EXECUTE FUNCTION crier.extend_partitions_at_commit();

SELECT crier.add_partition(t, 'default', 'DEFAULT')
FROM unnest(ARRAY['crier.events'::regclass, 'crier.deliveries'::regclass]) AS t
WHERE to_regclass(t::text || '_default') IS NULL;
SELECT crier.extend_partitions();
