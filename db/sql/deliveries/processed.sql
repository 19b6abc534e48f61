-- Consumer-side deduplication (ctx.markProcessed, docs/guarantees.md); pruned by
-- crier.prune_processed (operator/prune.sql). A worker role reaches only the rows of the
-- subscriptions granted to it: the row policy on crier.processed (roles.sql) limits what it reads
-- and writes, and both functions refuse, like crier.claim, a subscription the caller cannot see
-- (row security on crier.subscriptions hides the ones not granted to a worker role).

-- Records that a subscription processed an event. True the first time, false when it was already
-- recorded (a redelivery): call it in the same transaction as the handler's own writes. A second
-- caller racing on the same event waits for the first one's transaction, then gets false.
CREATE OR REPLACE FUNCTION crier.mark_processed(p_subscription text, p_event_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM crier.subscriptions WHERE name = p_subscription) THEN
    RAISE EXCEPTION 'CRIER_UNKNOWN_SUBSCRIPTION: no subscription % visible to role %', coalesce(quote_literal(p_subscription), 'NULL'),
      quote_ident(current_user) USING ERRCODE = 'P0002';
  END IF;
  INSERT INTO crier.processed (subscription, event_id) VALUES (p_subscription, p_event_id)
  ON CONFLICT DO NOTHING;
  RETURN FOUND;
END $$;

CREATE OR REPLACE FUNCTION crier.is_processed(p_subscription text, p_event_id bigint) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM crier.subscriptions WHERE name = p_subscription) THEN
    RAISE EXCEPTION 'CRIER_UNKNOWN_SUBSCRIPTION: no subscription % visible to role %', coalesce(quote_literal(p_subscription), 'NULL'),
      quote_ident(current_user) USING ERRCODE = 'P0002';
  END IF;
  RETURN EXISTS (SELECT 1 FROM crier.processed WHERE subscription = p_subscription AND event_id = p_event_id);
END $$;
