-- Topic names and patterns. A topic is dot-separated segments of [A-Za-z0-9_-]; a pattern's segments
-- may also be "*" (exactly one segment) or "#" (zero or more segments), as in AMQP topic exchanges.
-- Applied before the tables: crier.subscriptions checks its patterns with topic_patterns_valid, and
-- indexes them by topic_pattern_heads. Their length limit is the topic's (limits.sql).
CREATE OR REPLACE FUNCTION crier.topic_valid(p_topic text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT p_topic IS NOT NULL AND octet_length(p_topic) <= crier.limit_bytes('topic')
     AND p_topic ~ '^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$'
$$;

CREATE OR REPLACE FUNCTION crier.topic_pattern_valid(p_pattern text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT p_pattern IS NOT NULL AND octet_length(p_pattern) <= crier.limit_bytes('topic')
     AND p_pattern ~ '^([A-Za-z0-9_-]+|\*|#)(\.([A-Za-z0-9_-]+|\*|#))*$'
$$;

-- The pattern as a regular expression over '.' || topic: each segment brings its own leading dot,
-- so "#" can stand for zero segments without leaving a stray separator behind.
CREATE OR REPLACE FUNCTION crier.topic_pattern_regex(p_pattern text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT '^' || string_agg(
           CASE seg WHEN '*' THEN '\.[^.]+' WHEN '#' THEN '(\.[^.]+)*' ELSE '\.' || seg END,
           '' ORDER BY ord) || '$'
  FROM unnest(string_to_array(p_pattern, '.')) WITH ORDINALITY AS s(seg, ord)
$$;

CREATE OR REPLACE FUNCTION crier.topic_matches(p_topic text, p_pattern text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT ('.' || p_topic) ~ crier.topic_pattern_regex(p_pattern)
$$;

CREATE OR REPLACE FUNCTION crier.topic_patterns_valid(p_patterns text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT cardinality(p_patterns) > 0
     AND NOT EXISTS (SELECT 1 FROM unnest(p_patterns) p WHERE NOT crier.topic_pattern_valid(p))
$$;

-- A pattern's first segment, or '*' when it starts with a wildcard ("*" or "#"): a topic can only
-- match the patterns whose head is its own first segment or '*'. Routing looks subscriptions up by
-- their heads (crier.subscriptions.topic_heads, indexed), so resolving a new topic's routes tests
-- the candidates only, not every pattern (routing.sql).
CREATE OR REPLACE FUNCTION crier.topic_pattern_head(p_pattern text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE WHEN split_part(p_pattern, '.', 1) IN ('*', '#') THEN '*' ELSE split_part(p_pattern, '.', 1) END
$$;

CREATE OR REPLACE FUNCTION crier.topic_pattern_heads(p_patterns text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT coalesce(array_agg(DISTINCT crier.topic_pattern_head(p)), '{}') FROM unnest(p_patterns) p
$$;
