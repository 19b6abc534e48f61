-- JSON Schema, the subset zod emits: the validator behind the catalog's payload check
-- (catalog/validation.sql). Applied before the tables: crier.catalog_versions.unchecked_patterns
-- is a generated column computed by crier.json_schema_unchecked_patterns.
--
-- Regular expressions in JSON Schema are ECMAScript's; Postgres's are close but not equal. A
-- pattern Postgres cannot compile, or whose escapes mean something else there (\b is a word
-- boundary in JS and a backspace in Postgres; \p{..} does not exist), is not checked in SQL.
-- `crier catalog show` lists such patterns (crier.json_schema_unchecked_patterns).
CREATE OR REPLACE FUNCTION crier.regex_checkable(p_pattern text) RETURNS boolean
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

CREATE OR REPLACE FUNCTION crier.json_schema_unchecked_patterns(p_schema jsonb) RETURNS text[]
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

-- A path the way the TypeScript side prints zod's issue paths: items[0].sku, ["odd key"].
CREATE OR REPLACE FUNCTION crier.json_path_append(p_path text, p_key text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN p_key ~ '^[A-Za-z_$][A-Za-z0-9_$]*$' THEN CASE WHEN p_path = '' THEN p_key ELSE p_path || '.' || p_key END
    ELSE p_path || '[' || to_jsonb(p_key)::text || ']'
  END
$$;

-- The errors of p_value against p_schema, one "path: message" each (empty: valid). Unknown keywords
-- are annotations and ignored, as JSON Schema says; "format" is an annotation too (zod emits a
-- "pattern" beside the formats it checks).
CREATE OR REPLACE FUNCTION crier.json_schema_errors(
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
