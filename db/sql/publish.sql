-- Publishing from SQL, inside the business transaction. The library's publish is an INSERT into
-- crier.events with the same checks; either way the fan-out trigger (fan_out.sql) creates the
-- deliveries. p_idempotency_key: a retried call returns the event of the first one, per topic.
-- p_deliver_at: delayed delivery. The key and header ids are held to their limits by the table's
-- check (limits.sql).
-- select crier.publish('order.created', '{"id": 42}', '42', '{}', p_idempotency_key => 'req-7',
--                      p_deliver_at => now() + interval '10 minutes');
-- Publishing with idempotency keys, from SQL (crier.publish) and from the library (src/publish.ts):
-- the only way a publisher reaches crier.idempotency_keys, which it may neither read nor write
-- (docs/security.md), so it can neither list other producers' keys nor take a key for an event it
-- does not insert. Runs as its owner. p_events is a JSON array of events as the library encodes
-- them (uuid, topic, key, payload, headers, idempotency_key, deliver_at, delay_ms, version).
-- Ids are drawn first, keys are claimed (ON CONFLICT DO NOTHING waits for a concurrent transaction
-- holding the same key) and only events whose key was claimed, or that have none, are inserted.
-- Returns one row per input event, in order: a duplicate is the first event of its key
-- (duplicate = true, nothing inserted), read by a later statement so that it sees what a
-- concurrent transaction committed while this one waited.
CREATE OR REPLACE FUNCTION crier.publish_idempotent(p_events jsonb)
RETURNS TABLE (id bigint, uuid uuid, topic text, version integer, created_at timestamptz, duplicate boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
  v_row record;
  v_bad text;
BEGIN
  IF p_events IS NULL OR jsonb_typeof(p_events) <> 'array' THEN
    RAISE EXCEPTION 'CRIER_INVALID_PAYLOAD: publish_idempotent takes a JSON array of events' USING ERRCODE = '22023';
  END IF;
  SELECT x.k INTO v_bad FROM jsonb_array_elements(p_events) a(v), LATERAL (SELECT a.v ->> 'idempotency_key' AS k) x
  WHERE x.k = '' OR octet_length(x.k) > crier.limit_bytes('idempotency key') LIMIT 1;
  IF v_bad = '' THEN
    RAISE EXCEPTION 'CRIER_INVALID_IDEMPOTENCY_KEY: an idempotency key is not empty' USING ERRCODE = '22023';
  ELSIF FOUND THEN
    PERFORM crier.check_bytes('CRIER_IDEMPOTENCY_KEY_TOO_LONG', 'idempotency key', v_bad, crier.limit_bytes('idempotency key'));
  END IF;
  FOR v_row IN
    WITH input AS MATERIALIZED (
      SELECT nextval(pg_get_serial_sequence('crier.events', 'id')) AS id, coalesce(x.uuid, gen_random_uuid()) AS uuid, a.n,
             x.topic, x.key, x.payload, coalesce(x.headers, '{}') AS headers, x.idempotency_key,
             coalesce(x.deliver_at, statement_timestamp() + x.delay_ms * interval '1 millisecond') AS deliver_at,
             coalesce(x.version, 1) AS version
      FROM jsonb_array_elements(p_events) WITH ORDINALITY AS a(v, n)
      CROSS JOIN LATERAL jsonb_to_record(a.v) AS x(uuid uuid, topic text, key text, payload jsonb, headers jsonb,
        idempotency_key text, deliver_at timestamptz, delay_ms double precision, version integer)
    ), claimed AS (
      INSERT INTO crier.idempotency_keys (topic, key, event_id, event_uuid)
      SELECT i.topic, i.idempotency_key, i.id, i.uuid FROM input i WHERE i.idempotency_key IS NOT NULL ORDER BY i.n
      ON CONFLICT ON CONSTRAINT idempotency_keys_topic_key_pk DO NOTHING
      RETURNING event_id
    ), inserted AS (
      INSERT INTO crier.events (id, uuid, topic, key, payload, headers, deliver_at, version) OVERRIDING SYSTEM VALUE
      SELECT i.id, i.uuid, i.topic, i.key, i.payload, i.headers, i.deliver_at, i.version FROM input i
      WHERE i.idempotency_key IS NULL OR i.id IN (SELECT c.event_id FROM claimed c)
      ORDER BY i.n
      RETURNING events.id, events.created_at
    )
    SELECT e.id, i.uuid, i.topic, i.version, e.created_at, i.idempotency_key
    FROM input i LEFT JOIN inserted e ON e.id = i.id
    ORDER BY i.n
  LOOP
    IF v_row.id IS NOT NULL THEN
      RETURN QUERY SELECT v_row.id, v_row.uuid, v_row.topic, v_row.version, v_row.created_at, false;
      CONTINUE;
    END IF;
    RETURN QUERY SELECT k.event_id, k.event_uuid, k.topic, v_row.version, k.created_at, true
      FROM crier.idempotency_keys k WHERE k.topic = v_row.topic AND k.key = v_row.idempotency_key;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'CRIER_INVALID_IDEMPOTENCY_KEY: idempotency key % was taken and then pruned during this publish; retry it',
        quote_literal(left(v_row.idempotency_key, 80)) USING ERRCODE = '40001';
    END IF;
  END LOOP;
END $$;

CREATE OR REPLACE FUNCTION crier.publish(
  p_topic text, p_payload jsonb, p_key text DEFAULT NULL, p_headers jsonb DEFAULT '{}',
  p_idempotency_key text DEFAULT NULL, p_deliver_at timestamptz DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
  v_uuid uuid := gen_random_uuid();
BEGIN
  IF NOT crier.topic_valid(p_topic) THEN
    PERFORM crier.check_bytes('CRIER_TOPIC_TOO_LONG', 'topic', p_topic, crier.limit_bytes('topic'));
    RAISE EXCEPTION 'CRIER_INVALID_TOPIC: % is not a valid topic (dot-separated segments of letters, digits, "_" and "-", at most 255 characters)',
      coalesce(quote_literal(p_topic), 'NULL') USING ERRCODE = '22023';
  END IF;
  IF p_payload IS NULL THEN
    RAISE EXCEPTION 'CRIER_INVALID_PAYLOAD: payload is NULL (use ''{}''::jsonb or ''null''::jsonb for an empty payload)'
      USING ERRCODE = '22023';
  END IF;
  IF p_headers IS NULL OR jsonb_typeof(p_headers) <> 'object' THEN
    RAISE EXCEPTION 'CRIER_INVALID_HEADERS: headers must be a JSON object, got %',
      CASE WHEN p_headers IS NULL THEN 'NULL'
           WHEN octet_length(p_headers::text) <= 80 THEN p_headers::text
           ELSE left(p_headers::text, 40) || format('… (%s bytes)', octet_length(p_headers::text)) END
      USING ERRCODE = '22023';
  END IF;
  IF p_idempotency_key IS NOT NULL THEN
    -- The key and its event are written together by the one function that may touch the keys
    -- (it also checks the key).
    SELECT p.id INTO v_id FROM crier.publish_idempotent(jsonb_build_array(jsonb_build_object(
      'uuid', v_uuid, 'topic', p_topic, 'key', p_key, 'payload', p_payload, 'headers', p_headers,
      'idempotency_key', p_idempotency_key, 'deliver_at', p_deliver_at))) AS p;
    RETURN v_id;
  END IF;
  INSERT INTO crier.events (uuid, topic, key, payload, headers, deliver_at)
  VALUES (v_uuid, p_topic, p_key, p_payload, p_headers, p_deliver_at)
  RETURNING id INTO v_id;
  RETURN v_id;
END $$;
