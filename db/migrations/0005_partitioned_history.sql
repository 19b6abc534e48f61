CREATE TABLE "crier"."partitioning" (
	"singleton" boolean PRIMARY KEY DEFAULT true NOT NULL,
	"rows_per_partition" bigint DEFAULT 1000000 NOT NULL,
	CONSTRAINT "partitioning_singleton" CHECK ("crier"."partitioning"."singleton"),
	CONSTRAINT "partitioning_rows_valid" CHECK ("crier"."partitioning"."rows_per_partition" >= 1000)
);
--> statement-breakpoint
INSERT INTO "crier"."partitioning" DEFAULT VALUES;--> statement-breakpoint
-- Written by hand (drizzle-kit has no partitioned tables): crier.events and crier.deliveries become
-- partitioned by ranges of id (db/sql/partitions.sql). Each table as it was becomes the partition
-- "<table>_p0" of ids up to the next one, attached without copying a row (its indexes, renamed,
-- become the partitions' own; the one scan is ATTACH checking the range), or is dropped when empty.
-- Its identity moves to the new parent at the same next value. db/sql/partitions.sql adds the
-- partitions for the ids to come. events' uuid stops being UNIQUE (a partitioned table's unique keys must hold id):
-- a plain index on the parent replaces it (the one index built here over existing rows). The
-- triggers and views on the old tables are dropped here and made again by db/sql, applied anew
-- after every table migration.
DO $$
DECLARE
  v_table text;
  v_next bigint;
  v_index record;
  v_view record;
  v_kept boolean;
BEGIN
  -- Views follow a renamed table: drop them, db/sql makes them again on the new tables.
  FOR v_view IN SELECT DISTINCT c.oid::regclass::text AS name FROM pg_depend d
      JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class c ON c.oid = r.ev_class
      WHERE d.refobjid IN ('crier.events'::regclass, 'crier.deliveries'::regclass) AND c.relkind = 'v' LOOP
    EXECUTE format('DROP VIEW IF EXISTS %s CASCADE', v_view.name);
  END LOOP;
  ALTER TABLE crier.events DROP CONSTRAINT events_uuid_unique;
  FOREACH v_table IN ARRAY ARRAY['events', 'deliveries'] LOOP
    v_next := coalesce(pg_sequence_last_value(pg_get_serial_sequence('crier.' || v_table, 'id')::regclass), 0) + 1;
    EXECUTE format('ALTER TABLE crier.%1$I RENAME TO %1$s_p0', v_table);
    FOR v_index IN SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = format('crier.%s_p0', v_table)::regclass LOOP
      EXECUTE format('ALTER INDEX crier.%I RENAME TO %I', v_index.name, replace(v_index.name, v_table || '_', v_table || '_p0_'));
    END LOOP;
    FOR v_index IN SELECT t.tgname AS name FROM pg_trigger t
        WHERE t.tgrelid = format('crier.%s_p0', v_table)::regclass AND NOT t.tgisinternal LOOP
      EXECUTE format('DROP TRIGGER %I ON crier.%s_p0', v_index.name, v_table);
    END LOOP;
    EXECUTE format('ALTER TABLE crier.%s_p0 ALTER COLUMN id DROP IDENTITY', v_table);
    EXECUTE format('CREATE TABLE crier.%1$s (LIKE crier.%1$s_p0 INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (id)', v_table);
    EXECUTE format('ALTER TABLE crier.%1$s ADD CONSTRAINT %1$s_pkey PRIMARY KEY (id)', v_table);
    -- LIKE copies a CHECK as valid; one left NOT VALID (not checked on old rows) stays so.
    FOR v_index IN SELECT c.conname AS name, pg_get_constraintdef(c.oid) AS def FROM pg_constraint c
        WHERE c.conrelid = format('crier.%s_p0', v_table)::regclass AND c.contype = 'c' AND NOT c.convalidated LOOP
      EXECUTE format('ALTER TABLE crier.%1$s DROP CONSTRAINT %2$I, ADD CONSTRAINT %2$I %3$s', v_table, v_index.name, v_index.def);
    END LOOP;
    EXECUTE format('ALTER TABLE crier.%s ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (START WITH %s)', v_table, v_next);
    -- The old table's indexes, on the parent: Postgres adopts the partition's matching ones.
    FOR v_index IN SELECT pg_get_indexdef(i.indexrelid) AS def, c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = format('crier.%s_p0', v_table)::regclass AND NOT i.indisprimary LOOP
      EXECUTE replace(replace(v_index.def, format('ON crier.%s_p0 ', v_table), format('ON crier.%s ', v_table)),
                      format('INDEX %s ', v_index.name), format('INDEX %s ', replace(v_index.name, v_table || '_p0_', v_table || '_')));
    END LOOP;
    EXECUTE format('SELECT EXISTS (SELECT FROM crier.%s_p0)', v_table) INTO v_kept;
    IF v_kept THEN
      EXECUTE format('ALTER TABLE crier.%1$s ATTACH PARTITION crier.%1$s_p0 FOR VALUES FROM (MINVALUE) TO (%2$s)', v_table, v_next);
    ELSE
      EXECUTE format('DROP TABLE crier.%s_p0', v_table);
    END IF;
  END LOOP;
END $$;--> statement-breakpoint
CREATE INDEX "events_uuid_idx" ON "crier"."events" USING btree ("uuid");
