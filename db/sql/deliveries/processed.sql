-- Consumer-side deduplication (ctx.markProcessed, docs/guarantees.md); pruned by
-- crier.prune_processed (operator/prune.sql).

-- Records that a subscription processed an event. True the first time, false when it was already
-- recorded (a redelivery): call it in the same transaction as the handler's own writes. A second
-- caller racing on the same event waits for the first one's transaction, then gets false.
CREATE OR REPLACE FUNCTION crier.mark_processed(p_subscription text, p_event_id bigint) RETURNS boolean
LANGUAGE sql AS $$
  WITH marked AS (
    INSERT INTO crier.processed (subscription, event_id) VALUES (p_subscription, p_event_id)
    ON CONFLICT DO NOTHING
    RETURNING 1
  )
  SELECT EXISTS (SELECT 1 FROM marked)
$$;

CREATE OR REPLACE FUNCTION crier.is_processed(p_subscription text, p_event_id bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM crier.processed WHERE subscription = p_subscription AND event_id = p_event_id)
$$;
