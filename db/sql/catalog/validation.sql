-- The event catalog in SQL (docs/catalog.md): every insert into crier.events (crier.publish, the
-- library's INSERT, a trigger on a business table) of a topic whose `validate` flag is on is checked
-- against the JSON Schema of its version (catalog/json_schema.sql); when crier.catalog_settings says
-- so, an insert whose topic is not registered is refused. With no topic flagged, the check is
-- disabled and costs nothing.

-- "; did you mean "order.created"?" for a topic that is not registered (error paths only).
CREATE OR REPLACE FUNCTION crier.edit_distance(a text, b text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  v_prev integer[] := ARRAY(SELECT generate_series(0, length(b)));
  v_cur integer[];
BEGIN
  FOR i IN 1 .. length(a) LOOP
    v_cur := ARRAY[i];
    FOR j IN 1 .. length(b) LOOP
      v_cur := v_cur || least(v_prev[j + 1] + 1, v_cur[j] + 1,
                              v_prev[j] + CASE WHEN substr(a, i, 1) = substr(b, j, 1) THEN 0 ELSE 1 END);
    END LOOP;
    v_prev := v_cur;
  END LOOP;
  RETURN v_prev[length(b) + 1];
END $$;

CREATE OR REPLACE FUNCTION crier.catalog_suggestion(p_topic text) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT coalesce((
    SELECT '; did you mean ' || to_jsonb(t.topic)::text || '?'
    FROM crier.catalog_topics t
    WHERE crier.edit_distance(lower(t.topic), lower(p_topic)) <= greatest(2, length(p_topic) / 3)
    ORDER BY crier.edit_distance(lower(t.topic), lower(p_topic)), t.topic
    LIMIT 1), '')
$$;

-- Once per INSERT statement, before crier.fan_out (triggers fire in name order), and only while
-- some topic has validation on (see below): checks the new rows of those topics, set-based.
-- Every row is checked against its own version, so an old producer publishing v1 stays valid. Runs
-- as its owner: publishers need no rights on the catalog tables.
CREATE OR REPLACE FUNCTION crier.check_catalog() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
  v_errors text[];
  v_unknown text;
BEGIN
  IF (SELECT reject_unknown_topics FROM crier.catalog_settings) THEN
    SELECT e.topic INTO v_unknown FROM new_events e
    WHERE NOT EXISTS (SELECT 1 FROM crier.catalog_topics t WHERE t.topic = e.topic)
    LIMIT 1;
    IF v_unknown IS NOT NULL THEN
      RAISE EXCEPTION 'CRIER_UNKNOWN_TOPIC: topic % is not in the registered catalog%; unknown topics are rejected here (select crier.set_reject_unknown_topics(false) to allow them)',
        to_jsonb(v_unknown)::text, crier.catalog_suggestion(v_unknown) USING ERRCODE = '22023';
    END IF;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM crier.catalog_topics WHERE validate) THEN
    RETURN NULL;
  END IF;
  FOR r IN
    SELECT e.id, e.topic, e.version, e.payload, t.latest_version, v.json_schema, v.unchecked_patterns
    FROM new_events e
    JOIN crier.catalog_topics t ON t.topic = e.topic AND t.validate
    LEFT JOIN crier.catalog_versions v ON v.topic = e.topic AND v.version = e.version
    ORDER BY e.id
  LOOP
    IF r.json_schema IS NULL THEN
      RAISE EXCEPTION 'CRIER_INVALID_PAYLOAD: % v%: no such version in the catalog (registered: v1..v%)',
        r.topic, r.version, r.latest_version USING ERRCODE = '22023';
    END IF;
    v_errors := crier.json_schema_errors(r.json_schema, r.payload, r.unchecked_patterns);
    IF cardinality(v_errors) > 0 THEN
      RAISE EXCEPTION 'CRIER_INVALID_PAYLOAD: % v%: payload does not match the registered schema: %',
        r.topic, r.version,
        array_to_string(v_errors[1:10], '; ') || CASE WHEN cardinality(v_errors) > 10
                                                  THEN '; and ' || (cardinality(v_errors) - 10) || ' more' ELSE '' END
        USING ERRCODE = '22023', DETAIL = format('payload: %s', left(r.payload::text, 500));
    END IF;
  END LOOP;
  RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER events_catalog_check AFTER INSERT ON crier.events
REFERENCING NEW TABLE AS new_events
FOR EACH STATEMENT EXECUTE FUNCTION crier.check_catalog();
-- The check is enabled only while it has something to do: a statement trigger with a transition
-- table costs about 35 µs per single-row INSERT even when it checks no row (bench/catalog-trigger.ts),
-- and with no topic validated publishing must cost what it costs without a catalog. Toggling takes
-- a brief lock on crier.events, so it happens only when the answer to "is any topic validated?"
-- changes (crier.sync_catalog_check below), and gives up after 5s rather than queue every
-- publisher behind a long transaction.

-- Writers of catalog_topics (and catalog_settings) take turns, so that the last one sees every
-- committed flag.
CREATE OR REPLACE FUNCTION crier.catalog_topics_lock() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('crier.catalog_topics'));
  RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER catalog_topics_lock BEFORE INSERT OR UPDATE OR DELETE ON crier.catalog_topics
FOR EACH STATEMENT EXECUTE FUNCTION crier.catalog_topics_lock();

-- SECURITY DEFINER: ALTER TABLE needs the owner of crier.events, and whoever may flip a topic's
-- flag (an operator, registerCatalog at deploy) may thereby enable or disable the check.
CREATE OR REPLACE FUNCTION crier.sync_catalog_check() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '5s' AS $$
DECLARE
  v_wanted boolean := EXISTS (SELECT 1 FROM crier.catalog_topics WHERE validate)
                      OR coalesce((SELECT reject_unknown_topics FROM crier.catalog_settings), false);
  v_enabled boolean;
BEGIN
  SELECT t.tgenabled <> 'D' INTO v_enabled FROM pg_trigger t
  WHERE t.tgrelid = 'crier.events'::regclass AND t.tgname = 'events_catalog_check';
  IF v_wanted <> v_enabled THEN  -- (NULL: the check was dropped by hand; leave it so)
    IF v_wanted THEN
      ALTER TABLE crier.events ENABLE TRIGGER events_catalog_check;
    ELSE
      ALTER TABLE crier.events DISABLE TRIGGER events_catalog_check;
    END IF;
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER catalog_topics_sync AFTER INSERT OR UPDATE OF validate OR DELETE ON crier.catalog_topics
FOR EACH STATEMENT EXECUTE FUNCTION crier.sync_catalog_check();

CREATE OR REPLACE TRIGGER catalog_settings_lock BEFORE UPDATE ON crier.catalog_settings
FOR EACH STATEMENT EXECUTE FUNCTION crier.catalog_topics_lock();

CREATE OR REPLACE TRIGGER catalog_settings_sync AFTER UPDATE ON crier.catalog_settings
FOR EACH STATEMENT EXECUTE FUNCTION crier.sync_catalog_check();

-- (Re)creating events_catalog_check above enabled it: an update of the settings row, which changes
-- nothing, fires crier.sync_catalog_check, which disables it again unless some topic needs it.
UPDATE crier.catalog_settings SET updated_at = updated_at;

-- select crier.set_catalog_validation('order.created', true);  -- an operator's switch
CREATE OR REPLACE FUNCTION crier.set_catalog_validation(p_topic text, p_validate boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE crier.catalog_topics SET validate = p_validate, updated_at = now() WHERE topic = p_topic;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'CRIER_UNKNOWN_TOPIC: topic % is not in the registered catalog', quote_literal(p_topic)
      USING ERRCODE = 'P0002';
  END IF;
END $$;

-- select crier.set_reject_unknown_topics(true);  -- every insert must name a registered topic
CREATE OR REPLACE FUNCTION crier.set_reject_unknown_topics(p_reject boolean) RETURNS void
LANGUAGE sql AS $$
  UPDATE crier.catalog_settings SET reject_unknown_topics = p_reject, updated_at = now()
  WHERE reject_unknown_topics IS DISTINCT FROM p_reject;
$$;
