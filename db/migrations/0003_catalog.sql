-- The event catalog in SQL (issue 5, docs/catalog.md): each event records the schema version of
-- its payload; the catalog registered from TypeScript (zod's own JSON Schemas) is stored in
-- crier.catalog_topics / crier.catalog_versions; and, for topics whose `validate` flag is on, every
-- insert into crier.events (crier.publish, a direct INSERT, a trigger on a business table) is
-- checked against the JSON Schema of its version; and, when crier.catalog_settings says so, an
-- insert whose topic is not registered is refused. With no topic flagged, the check is disabled
-- and costs nothing.

ALTER TABLE "crier"."events" ADD COLUMN "version" integer DEFAULT 1 NOT NULL;
--> statement-breakpoint
ALTER TABLE "crier"."events" ADD CONSTRAINT "events_version_positive" CHECK ("crier"."events"."version" >= 1);
--> statement-breakpoint
CREATE TABLE "crier"."catalog_topics" (
	"topic" text PRIMARY KEY NOT NULL,
	"latest_version" integer NOT NULL,
	"description" text,
	"validate" boolean DEFAULT false NOT NULL,
	"registered_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "catalog_topics_topic_valid" CHECK (length("crier"."catalog_topics"."topic") <= 255 and "crier"."catalog_topics"."topic" ~ '^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$'),
	CONSTRAINT "catalog_topics_latest_version_positive" CHECK ("crier"."catalog_topics"."latest_version" >= 1)
);
--> statement-breakpoint
CREATE TABLE "crier"."catalog_versions" (
	"topic" text NOT NULL,
	"version" integer NOT NULL,
	"json_schema" jsonb NOT NULL,
	"registered_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "catalog_versions_topic_version_pk" PRIMARY KEY("topic","version"),
	CONSTRAINT "catalog_versions_version_positive" CHECK ("crier"."catalog_versions"."version" >= 1)
);
--> statement-breakpoint
ALTER TABLE "crier"."catalog_versions" ADD CONSTRAINT "catalog_versions_topic_catalog_topics_topic_fk" FOREIGN KEY ("topic") REFERENCES "crier"."catalog_topics"("topic") ON DELETE cascade ON UPDATE no action;
--> statement-breakpoint
CREATE TABLE "crier"."catalog_settings" (
	"singleton" boolean PRIMARY KEY DEFAULT true NOT NULL,
	"reject_unknown_topics" boolean DEFAULT false NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "catalog_settings_singleton" CHECK ("crier"."catalog_settings"."singleton")
);
--> statement-breakpoint
INSERT INTO crier.catalog_settings DEFAULT VALUES;
--> statement-breakpoint

-- JSON Schema, the subset zod emits --------------------------------------------------------------
-- Regular expressions in JSON Schema are ECMAScript's; Postgres's are close but not equal. A
-- pattern Postgres cannot compile, or whose escapes mean something else there (\b is a word
-- boundary in JS and a backspace in Postgres; \p{..} does not exist), is not checked in SQL.
-- `crier catalog show` lists such patterns (crier.json_schema_unchecked_patterns).
CREATE FUNCTION crier.regex_checkable(p_pattern text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  IF p_pattern ~ '(^|[^\\])(\\\\)*\\([bBpPk]|u\{|x\{)' THEN
    RETURN false;
  END IF;
  PERFORM '' ~ p_pattern;
  RETURN true;
EXCEPTION WHEN invalid_regular_expression THEN
  RETURN false;
END $$;
--> statement-breakpoint
CREATE FUNCTION crier.json_schema_unchecked_patterns(p_schema jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce(array_agg(DISTINCT p ORDER BY p), '{}')
  FROM (
    SELECT p #>> '{}' AS p FROM jsonb_path_query(p_schema, 'lax $.**.pattern ? (@.type() == "string")') p
    UNION ALL
    SELECT k FROM jsonb_path_query(p_schema, 'lax $.**.patternProperties ? (@.type() == "object")') pp,
                  jsonb_object_keys(pp) k
  ) patterns
  WHERE NOT crier.regex_checkable(p)
$$;
--> statement-breakpoint
-- Computed once per registered version, not per event.
ALTER TABLE "crier"."catalog_versions" ADD COLUMN "unchecked_patterns" text[]
  GENERATED ALWAYS AS (crier.json_schema_unchecked_patterns(json_schema)) STORED;
--> statement-breakpoint
-- A path the way the TypeScript side prints zod's issue paths: items[0].sku, ["odd key"].
CREATE FUNCTION crier.json_path_append(p_path text, p_key text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN p_key ~ '^[A-Za-z_$][A-Za-z0-9_$]*$' THEN CASE WHEN p_path = '' THEN p_key ELSE p_path || '.' || p_key END
    ELSE p_path || '[' || to_jsonb(p_key)::text || ']'
  END
$$;
--> statement-breakpoint
-- The errors of p_value against p_schema, one "path: message" each (empty: valid). Unknown keywords
-- are annotations and ignored, as JSON Schema says; "format" is an annotation too (zod emits a
-- "pattern" beside the formats it checks).
CREATE FUNCTION crier.json_schema_errors(
  p_schema jsonb, p_value jsonb, p_unchecked_patterns text[] DEFAULT '{}', p_path text DEFAULT '',
  p_root jsonb DEFAULT NULL
) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  v_root jsonb := coalesce(p_root, p_schema);
  v_at text := CASE WHEN p_path = '' THEN '(root)' ELSE p_path END;
  v_type text := jsonb_typeof(p_value);
  v_errors text[] := '{}';
  v_types text[];
  v_ref text;
  v_target jsonb;
  v_key text;
  v_sub jsonb;
  v_num numeric;
  v_len integer;
  v_prefix integer := 0;
  v_branch text[];
  v_best text[];
  v_matches integer;
  v_i integer;
  v_keys jsonb;
BEGIN
  IF p_schema IS NULL OR p_schema = 'true'::jsonb OR p_schema = '{}'::jsonb THEN
    RETURN v_errors;
  END IF;
  IF p_schema = 'false'::jsonb THEN
    RETURN ARRAY[v_at || ': no value is allowed here'];
  END IF;

  -- $ref: "#" or a JSON pointer into the root ("#/$defs/Node"); siblings still apply (2020-12).
  v_ref := p_schema ->> '$ref';
  IF v_ref IS NOT NULL THEN
    IF v_ref = '#' THEN
      v_target := v_root;
    ELSIF v_ref LIKE '#/%' THEN
      v_target := v_root #> (SELECT array_agg(replace(replace(s, '~1', '/'), '~0', '~') ORDER BY n)
                             FROM unnest(string_to_array(substr(v_ref, 3), '/')) WITH ORDINALITY AS t(s, n));
    END IF;
    IF v_target IS NULL THEN
      RETURN ARRAY[v_at || ': schema reference ' || v_ref || ' cannot be resolved'];
    END IF;
    v_errors := v_errors || crier.json_schema_errors(v_target, p_value, p_unchecked_patterns, p_path, v_root);
  END IF;

  IF p_schema ? 'type' THEN
    IF jsonb_typeof(p_schema -> 'type') = 'array' THEN
      v_types := ARRAY(SELECT jsonb_array_elements_text(p_schema -> 'type'));
    ELSE
      v_types := ARRAY[p_schema ->> 'type'];
    END IF;
    IF NOT (v_type = ANY (v_types)
            OR CASE WHEN v_type = 'number' AND 'integer' = ANY (v_types)
                    THEN p_value::numeric = trunc(p_value::numeric) ELSE false END) THEN
      RETURN v_errors || (v_at || ': expected ' || array_to_string(v_types, ' or ') || ', got '
        || CASE WHEN v_type = 'number' AND 'integer' = ANY (v_types) THEN 'a fraction' ELSE v_type END);
    END IF;
  END IF;

  IF p_schema ? 'const' AND p_value IS DISTINCT FROM p_schema -> 'const' THEN
    v_errors := v_errors || (v_at || ': must be ' || (p_schema -> 'const')::text);
  END IF;
  -- (Conditions with a subquery are not plpgsql "simple expressions" and cost a full executor
  -- run each time: they sit behind a cheap test of whether the keyword is there at all.)
  IF jsonb_typeof(p_schema -> 'enum') = 'array' THEN
    IF NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p_schema -> 'enum') e WHERE e = p_value) THEN
      v_errors := v_errors || (v_at || ': must be one of '
        || (SELECT string_agg(e::text, ', ') FROM jsonb_array_elements(p_schema -> 'enum') e));
    END IF;
  END IF;

  IF v_type = 'string' THEN
    v_len := char_length(p_value #>> '{}');
    IF (p_schema ->> 'minLength')::integer > v_len THEN
      v_errors := v_errors || (v_at || ': must have at least ' || (p_schema ->> 'minLength') || ' characters');
    END IF;
    IF (p_schema ->> 'maxLength')::integer < v_len THEN
      v_errors := v_errors || (v_at || ': must have at most ' || (p_schema ->> 'maxLength') || ' characters');
    END IF;
    IF jsonb_typeof(p_schema -> 'pattern') = 'string' AND NOT ((p_schema ->> 'pattern') = ANY (p_unchecked_patterns))
       AND NOT ((p_value #>> '{}') ~ (p_schema ->> 'pattern')) THEN
      v_errors := v_errors || (v_at || ': must match the pattern ' || (p_schema ->> 'pattern'));
    END IF;
  END IF;

  IF v_type = 'number' THEN
    v_num := p_value::numeric;
    IF v_num < (p_schema ->> 'minimum')::numeric THEN
      v_errors := v_errors || (v_at || ': must be >= ' || (p_schema ->> 'minimum'));
    END IF;
    IF v_num > (p_schema ->> 'maximum')::numeric THEN
      v_errors := v_errors || (v_at || ': must be <= ' || (p_schema ->> 'maximum'));
    END IF;
    IF jsonb_typeof(p_schema -> 'exclusiveMinimum') = 'number' AND v_num <= (p_schema ->> 'exclusiveMinimum')::numeric THEN
      v_errors := v_errors || (v_at || ': must be > ' || (p_schema ->> 'exclusiveMinimum'));
    END IF;
    IF jsonb_typeof(p_schema -> 'exclusiveMaximum') = 'number' AND v_num >= (p_schema ->> 'exclusiveMaximum')::numeric THEN
      v_errors := v_errors || (v_at || ': must be < ' || (p_schema ->> 'exclusiveMaximum'));
    END IF;
    IF (p_schema ->> 'multipleOf')::numeric > 0 AND v_num % (p_schema ->> 'multipleOf')::numeric <> 0 THEN
      v_errors := v_errors || (v_at || ': must be a multiple of ' || (p_schema ->> 'multipleOf'));
    END IF;
  END IF;

  IF v_type = 'object' THEN
    -- Index loops over jsonb arrays: plain expressions, no query per object (3x faster).
    IF jsonb_typeof(p_schema -> 'required') = 'array' THEN
      FOR v_i IN 0 .. jsonb_array_length(p_schema -> 'required') - 1 LOOP
        v_key := p_schema -> 'required' ->> v_i;
        IF NOT p_value ? v_key THEN
          v_errors := v_errors || (crier.json_path_append(p_path, v_key) || ': required');
        END IF;
      END LOOP;
    END IF;
    v_keys := jsonb_path_query_array(p_value, '$.keyvalue().key');
    FOR v_i IN 0 .. jsonb_array_length(v_keys) - 1 LOOP
      v_key := v_keys ->> v_i;
      v_sub := p_value -> v_key;
      IF p_schema -> 'properties' ? v_key THEN
        v_errors := v_errors || crier.json_schema_errors(p_schema -> 'properties' -> v_key, v_sub,
                                                         p_unchecked_patterns, crier.json_path_append(p_path, v_key), v_root);
      ELSIF p_schema ? 'patternProperties'
            AND EXISTS (SELECT 1 FROM jsonb_object_keys(p_schema -> 'patternProperties') k
                        WHERE NOT (k = ANY (p_unchecked_patterns)) AND v_key ~ k) THEN
        v_errors := v_errors || (SELECT coalesce(array_agg(err), '{}') FROM jsonb_each(p_schema -> 'patternProperties') pp,
                                   unnest(crier.json_schema_errors(pp.value, v_sub, p_unchecked_patterns,
                                                                   crier.json_path_append(p_path, v_key), v_root)) err
                                 WHERE NOT (pp.key = ANY (p_unchecked_patterns)) AND v_key ~ pp.key);
      ELSIF p_schema ? 'additionalProperties' THEN
        IF p_schema -> 'additionalProperties' = 'false'::jsonb THEN
          v_errors := v_errors || (crier.json_path_append(p_path, v_key) || ': unexpected property');
        ELSE
          v_errors := v_errors || crier.json_schema_errors(p_schema -> 'additionalProperties', v_sub,
                                                           p_unchecked_patterns, crier.json_path_append(p_path, v_key), v_root);
        END IF;
      END IF;
      IF p_schema ? 'propertyNames' THEN
        v_errors := v_errors || crier.json_schema_errors(p_schema -> 'propertyNames', to_jsonb(v_key),
                                                         p_unchecked_patterns, crier.json_path_append(p_path, v_key) || ' (name)', v_root);
      END IF;
    END LOOP;
    IF p_schema ? 'minProperties' OR p_schema ? 'maxProperties' THEN
      v_len := jsonb_array_length(v_keys);
      IF (p_schema ->> 'minProperties')::integer > v_len THEN
        v_errors := v_errors || (v_at || ': must have at least ' || (p_schema ->> 'minProperties') || ' properties');
      END IF;
      IF (p_schema ->> 'maxProperties')::integer < v_len THEN
        v_errors := v_errors || (v_at || ': must have at most ' || (p_schema ->> 'maxProperties') || ' properties');
      END IF;
    END IF;
  END IF;

  IF v_type = 'array' THEN
    v_len := jsonb_array_length(p_value);
    IF (p_schema ->> 'minItems')::integer > v_len THEN
      v_errors := v_errors || (v_at || ': must have at least ' || (p_schema ->> 'minItems') || ' items');
    END IF;
    IF (p_schema ->> 'maxItems')::integer < v_len THEN
      v_errors := v_errors || (v_at || ': must have at most ' || (p_schema ->> 'maxItems') || ' items');
    END IF;
    -- Tuples: prefixItems (2020-12) or an array of "items" (draft-07); then "items" (2020-12) or
    -- "additionalItems" (draft-07) for the rest.
    v_sub := CASE WHEN jsonb_typeof(p_schema -> 'prefixItems') = 'array' THEN p_schema -> 'prefixItems'
                  WHEN jsonb_typeof(p_schema -> 'items') = 'array' THEN p_schema -> 'items' END;
    IF v_sub IS NOT NULL THEN
      v_prefix := jsonb_array_length(v_sub);
      FOR v_i IN 0 .. least(v_prefix, v_len) - 1 LOOP
        v_errors := v_errors || crier.json_schema_errors(v_sub -> v_i, p_value -> v_i, p_unchecked_patterns,
                                                         p_path || '[' || v_i || ']', v_root);
      END LOOP;
    END IF;
    v_sub := CASE WHEN jsonb_typeof(p_schema -> 'items') = 'array' THEN p_schema -> 'additionalItems'
                  ELSE p_schema -> 'items' END;
    IF v_sub IS NOT NULL THEN
      FOR v_i IN v_prefix .. v_len - 1 LOOP
        v_errors := v_errors || CASE WHEN v_sub = 'false'::jsonb
                                  THEN ARRAY[p_path || '[' || v_i || ']: unexpected item (at most ' || v_prefix || ' items)']
                                  ELSE crier.json_schema_errors(v_sub, p_value -> v_i, p_unchecked_patterns,
                                                                p_path || '[' || v_i || ']', v_root) END;
      END LOOP;
    END IF;
    IF p_schema -> 'uniqueItems' = 'true'::jsonb THEN
      IF (SELECT count(DISTINCT e) FROM jsonb_array_elements(p_value) e) < v_len THEN
        v_errors := v_errors || (v_at || ': items must be unique');
      END IF;
    END IF;
  END IF;

  IF jsonb_typeof(p_schema -> 'allOf') = 'array' THEN
    FOR v_sub IN SELECT jsonb_array_elements(p_schema -> 'allOf') LOOP
      v_errors := v_errors || crier.json_schema_errors(v_sub, p_value, p_unchecked_patterns, p_path, v_root);
    END LOOP;
  END IF;

  -- anyOf / oneOf: say which shape came closest, as zod does for unions.
  IF p_schema ? 'anyOf' OR p_schema ? 'oneOf' THEN
    FOR v_key IN SELECT k FROM unnest(ARRAY['anyOf', 'oneOf']) k WHERE jsonb_typeof(p_schema -> k) = 'array' LOOP
      v_matches := 0;
      v_best := NULL;
      FOR v_sub IN SELECT jsonb_array_elements(p_schema -> v_key) LOOP
        v_branch := crier.json_schema_errors(v_sub, p_value, p_unchecked_patterns, p_path, v_root);
        IF cardinality(v_branch) = 0 THEN
          v_matches := v_matches + 1;
        ELSIF v_best IS NULL OR cardinality(v_branch) < cardinality(v_best) THEN
          v_best := v_branch;
        END IF;
      END LOOP;
      IF v_matches = 0 THEN
        v_errors := v_errors || (v_at || ': matches none of the ' || jsonb_array_length(p_schema -> v_key)
          || ' allowed shapes (' || v_key || '); closest: ' || array_to_string(v_best, '; '));
      ELSIF v_key = 'oneOf' AND v_matches > 1 THEN
        v_errors := v_errors || (v_at || ': matches ' || v_matches || ' of the shapes of oneOf; exactly one must match');
      END IF;
    END LOOP;
  END IF;

  IF p_schema ? 'not'
     AND cardinality(crier.json_schema_errors(p_schema -> 'not', p_value, p_unchecked_patterns, p_path, v_root)) = 0 THEN
    v_errors := v_errors || (v_at || ': must not match the excluded shape (not)');
  END IF;

  IF p_schema ? 'if' THEN
    IF cardinality(crier.json_schema_errors(p_schema -> 'if', p_value, p_unchecked_patterns, p_path, v_root)) = 0 THEN
      IF p_schema ? 'then' THEN
        v_errors := v_errors || crier.json_schema_errors(p_schema -> 'then', p_value, p_unchecked_patterns, p_path, v_root);
      END IF;
    ELSIF p_schema ? 'else' THEN
      v_errors := v_errors || crier.json_schema_errors(p_schema -> 'else', p_value, p_unchecked_patterns, p_path, v_root);
    END IF;
  END IF;

  RETURN v_errors;
END $$;
--> statement-breakpoint

-- "; did you mean "order.created"?" for a topic that is not registered (error paths only).
CREATE FUNCTION crier.edit_distance(a text, b text) RETURNS integer
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
--> statement-breakpoint
CREATE FUNCTION crier.catalog_suggestion(p_topic text) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT coalesce((
    SELECT '; did you mean ' || to_jsonb(t.topic)::text || '?'
    FROM crier.catalog_topics t
    WHERE crier.edit_distance(lower(t.topic), lower(p_topic)) <= greatest(2, length(p_topic) / 3)
    ORDER BY crier.edit_distance(lower(t.topic), lower(p_topic)), t.topic
    LIMIT 1), '')
$$;
--> statement-breakpoint

-- Validation of inserted events ------------------------------------------------------------------
-- Once per INSERT statement, before crier.fan_out (triggers fire in name order), and only while
-- some topic has validation on (see below): checks the new rows of those topics, set-based.
-- Every row is checked against its own version, so an old producer publishing v1 stays valid.
CREATE FUNCTION crier.check_catalog() RETURNS trigger
LANGUAGE plpgsql AS $$
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
--> statement-breakpoint
CREATE TRIGGER events_catalog_check AFTER INSERT ON crier.events
REFERENCING NEW TABLE AS new_events
FOR EACH STATEMENT EXECUTE FUNCTION crier.check_catalog();
--> statement-breakpoint
-- The check is enabled only while it has something to do: a statement trigger with a transition
-- table costs about 35 µs per single-row INSERT even when it checks no row (bench/catalog-trigger.ts),
-- and with no topic validated publishing must cost what it costs without a catalog. Toggling takes a brief lock on crier.events, so it
-- happens only when the answer to "is any topic validated?" changes, and gives up after 5s
-- rather than queue every publisher behind a long transaction.
ALTER TABLE crier.events DISABLE TRIGGER events_catalog_check;
--> statement-breakpoint
-- Writers of catalog_topics (and catalog_settings) take turns, so that the last one sees every
-- committed flag.
CREATE FUNCTION crier.catalog_topics_lock() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('crier.catalog_topics'));
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER catalog_topics_lock BEFORE INSERT OR UPDATE OR DELETE ON crier.catalog_topics
FOR EACH STATEMENT EXECUTE FUNCTION crier.catalog_topics_lock();
--> statement-breakpoint
-- SECURITY DEFINER: ALTER TABLE needs the owner of crier.events, and whoever may flip a topic's
-- flag (an operator, registerCatalog at deploy) may thereby enable or disable the check.
CREATE FUNCTION crier.sync_catalog_check() RETURNS trigger
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
--> statement-breakpoint
CREATE TRIGGER catalog_topics_sync AFTER INSERT OR UPDATE OF validate OR DELETE ON crier.catalog_topics
FOR EACH STATEMENT EXECUTE FUNCTION crier.sync_catalog_check();
--> statement-breakpoint
CREATE TRIGGER catalog_settings_lock BEFORE UPDATE ON crier.catalog_settings
FOR EACH STATEMENT EXECUTE FUNCTION crier.catalog_topics_lock();
--> statement-breakpoint
CREATE TRIGGER catalog_settings_sync AFTER UPDATE ON crier.catalog_settings
FOR EACH STATEMENT EXECUTE FUNCTION crier.sync_catalog_check();
--> statement-breakpoint

-- Reading the catalog from SQL --------------------------------------------------------------------
-- select * from crier.catalog;  -- one row per topic, as `crier catalog list` prints it
CREATE VIEW crier.catalog AS
SELECT t.topic, t.latest_version, t.validate, t.description,
       array_agg(v.version ORDER BY v.version) AS versions,
       t.registered_at, t.updated_at
FROM crier.catalog_topics t
JOIN crier.catalog_versions v ON v.topic = t.topic
GROUP BY t.topic;
--> statement-breakpoint
-- select crier.set_catalog_validation('order.created', true);  -- an operator's switch
CREATE FUNCTION crier.set_catalog_validation(p_topic text, p_validate boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE crier.catalog_topics SET validate = p_validate, updated_at = now() WHERE topic = p_topic;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'CRIER_UNKNOWN_TOPIC: topic % is not in the registered catalog', quote_literal(p_topic)
      USING ERRCODE = 'P0002';
  END IF;
END $$;
--> statement-breakpoint
-- select crier.set_reject_unknown_topics(true);  -- every insert must name a registered topic
CREATE FUNCTION crier.set_reject_unknown_topics(p_reject boolean) RETURNS void
LANGUAGE sql AS $$
  UPDATE crier.catalog_settings SET reject_unknown_topics = p_reject, updated_at = now()
  WHERE reject_unknown_topics IS DISTINCT FROM p_reject;
$$;
