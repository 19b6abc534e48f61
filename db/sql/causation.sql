-- Causation (docs/guarantees.md).
-- The conversation an event belongs to, as a tree: every event with the same correlation id,
-- each under the event that caused it (depth 0 = the event that started it). p_event is an event
-- id or uuid. Events published from handlers carry correlationId and causationId (uuids) headers.
CREATE OR REPLACE FUNCTION crier.event_chain(p_event text)
RETURNS TABLE (depth integer, id bigint, uuid uuid, topic text, key text, causation_id text,
               correlation_id text, created_at timestamptz, path text)
LANGUAGE sql STABLE AS $$
  WITH RECURSIVE target AS (
    SELECT coalesce(e.headers ->> 'correlationId', e.uuid::text) AS correlation
    FROM crier.events e
    WHERE CASE WHEN p_event ~ '^[0-9]+$' THEN e.id = p_event::bigint
               WHEN p_event ~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$' THEN e.uuid = p_event::uuid
               ELSE false END
  ), conversation AS (
    SELECT e.*, coalesce(e.headers ->> 'correlationId', e.uuid::text) AS correlation,
           e.headers ->> 'causationId' AS causation
    FROM crier.events e, target t
    WHERE (e.headers ? 'correlationId' AND e.headers ->> 'correlationId' = t.correlation)
       OR e.uuid = CASE WHEN t.correlation ~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$'
                        THEN t.correlation::uuid END
  ), tree AS (
    SELECT 0 AS depth, c.id, c.uuid, c.topic, c.key, c.causation, c.correlation, c.created_at,
           c.topic AS path, ARRAY[c.id] AS ids
    FROM conversation c
    WHERE c.causation IS NULL OR NOT EXISTS (SELECT 1 FROM conversation p WHERE p.uuid::text = c.causation)
    UNION ALL
    SELECT t.depth + 1, c.id, c.uuid, c.topic, c.key, c.causation, c.correlation, c.created_at,
           t.path || ' > ' || c.topic, t.ids || c.id
    FROM conversation c JOIN tree t ON c.causation = t.uuid::text
    WHERE t.depth < 100
  )
  SELECT depth, id, uuid, topic, key, causation, correlation, created_at, path FROM tree ORDER BY ids
$$;
