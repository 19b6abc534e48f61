-- Size limits, in bytes of UTF-8, of the values crier keeps in btree indexes (at most 2,704 bytes
-- a row): past one, an INSERT would fail on the index (error 54000) after a trigger had done half
-- its work. The same numbers as src/limits.ts (a test checks), which refuses them before anything
-- is sent; here they hold for crier.publish and plain INSERTs into crier.events. Applied before
-- the tables: crier.events' CHECK calls crier.event_within_limits for a row past a limit.

-- topic: the route cache, idempotency keys and the catalog are keyed by it (topics are ASCII).
-- key: ordered subscriptions index it beside the subscription name (deliveries_waiting_idx,
-- ordered_keys). idempotency key: indexed beside its topic. header id: the correlationId and
-- causationId headers (events_correlation_idx).
CREATE OR REPLACE FUNCTION crier.limit_bytes(p_what text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE p_what
    WHEN 'topic' THEN 255
    WHEN 'key' THEN 1024
    WHEN 'idempotency key' THEN 255
    WHEN 'header id' THEN 1024
  END
$$;

-- True when p_value (or NULL) fits in p_limit bytes; else raises p_code, naming both sizes and
-- showing only the start of the value.
CREATE OR REPLACE FUNCTION crier.check_bytes(p_code text, p_what text, p_value text, p_limit integer) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  IF octet_length(p_value) > p_limit THEN
    -- (Any value over a limit is longer than 40 characters: 4 bytes at most a character.)
    RAISE EXCEPTION '%: the % is % bytes (% characters), over the limit of % bytes of UTF-8: %… (cut)',
      p_code, p_what, octet_length(p_value), char_length(p_value), p_limit, quote_literal(left(p_value, 40))
      USING ERRCODE = '22023';
  END IF;
  RETURN true;
END $$;

-- The slow half of crier.events' CHECK events_byte_limits (db/schema.ts): the table compares the
-- lengths itself, with the numbers of src/limits.ts written in, and calls this only for a row past
-- one of them, to raise the error that names the value. A CHECK that called an SQL function had
-- it inlined and planned again for every INSERT statement: 30% of publishing one event per
-- transaction (pgbench, 8 clients). plpgsql, so that it is never inlined.
CREATE OR REPLACE FUNCTION crier.event_within_limits(p_topic text, p_key text, p_headers jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  RETURN crier.check_bytes('CRIER_TOPIC_TOO_LONG', 'topic', p_topic, crier.limit_bytes('topic'))
     AND crier.check_bytes('CRIER_KEY_TOO_LONG', 'key', p_key, crier.limit_bytes('key'))
     AND crier.check_bytes('CRIER_HEADER_TOO_LONG', 'correlationId header', p_headers ->> 'correlationId', crier.limit_bytes('header id'))
     AND crier.check_bytes('CRIER_HEADER_TOO_LONG', 'causationId header', p_headers ->> 'causationId', crier.limit_bytes('header id'));
END $$;
