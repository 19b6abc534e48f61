-- Publishing from SQL, inside the business transaction. The library's publish is an INSERT into
-- crier.events with the same checks; either way the fan-out trigger (fan_out.sql) creates the
-- deliveries. p_idempotency_key: a retried call returns the event of the first one, per topic.
-- p_deliver_at: delayed delivery.
-- select crier.publish('order.created', '{"id": 42}', '42', '{}', p_idempotency_key => 'req-7',
--                      p_deliver_at => now() + interval '10 minutes');
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
    RAISE EXCEPTION 'CRIER_INVALID_TOPIC: % is not a valid topic (dot-separated segments of letters, digits, "_" and "-", at most 255 characters)',
      coalesce(quote_literal(p_topic), 'NULL') USING ERRCODE = '22023';
  END IF;
  IF p_payload IS NULL THEN
    RAISE EXCEPTION 'CRIER_INVALID_PAYLOAD: payload is NULL (use ''{}''::jsonb or ''null''::jsonb for an empty payload)'
      USING ERRCODE = '22023';
  END IF;
  IF p_headers IS NULL OR jsonb_typeof(p_headers) <> 'object' THEN
    RAISE EXCEPTION 'CRIER_INVALID_HEADERS: headers must be a JSON object, got %', coalesce(p_headers::text, 'NULL')
      USING ERRCODE = '22023';
  END IF;
  IF p_idempotency_key IS NOT NULL THEN
    IF p_idempotency_key = '' OR length(p_idempotency_key) > 255 THEN
      RAISE EXCEPTION 'CRIER_INVALID_IDEMPOTENCY_KEY: an idempotency key is 1-255 characters, got %', quote_literal(p_idempotency_key)
        USING ERRCODE = '22023';
    END IF;
    v_id := nextval(pg_get_serial_sequence('crier.events', 'id'));
    -- Waits for a concurrent transaction holding the same key, then sees its outcome.
    INSERT INTO crier.idempotency_keys (topic, key, event_id, event_uuid)
    VALUES (p_topic, p_idempotency_key, v_id, v_uuid)
    ON CONFLICT (topic, key) DO NOTHING;
    IF NOT FOUND THEN
      SELECT k.event_id INTO v_id FROM crier.idempotency_keys k
      WHERE k.topic = p_topic AND k.key = p_idempotency_key;
      RETURN v_id;
    END IF;
    INSERT INTO crier.events (id, uuid, topic, key, payload, headers, deliver_at)
    OVERRIDING SYSTEM VALUE
    VALUES (v_id, v_uuid, p_topic, p_key, p_payload, p_headers, p_deliver_at);
    RETURN v_id;
  END IF;
  INSERT INTO crier.events (uuid, topic, key, payload, headers, deliver_at)
  VALUES (v_uuid, p_topic, p_key, p_payload, p_headers, p_deliver_at)
  RETURNING id INTO v_id;
  RETURN v_id;
END $$;
