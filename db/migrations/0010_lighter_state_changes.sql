-- Measured on the drain path (docs/benchmarks.md): every UPDATE of crier.deliveries paid for the
-- per-key ordering trigger even when the subscription was not ordered. A BEFORE UPDATE row trigger
-- makes Postgres lock each row before the update (whatever the trigger's WHEN says): one more WAL
-- record per claim and per ack. As an AFTER trigger its WHEN is checked first and nothing happens
-- for unordered deliveries. The one thing it did before the write, turning a requeued or replayed
-- delivery that is not its key's head into 'waiting', it now does with an UPDATE of that row.
-- And acks call crier.lock_ordered_keys only when some subscription is ordered.

DROP TRIGGER deliveries_ordered_state ON crier.deliveries;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION crier.ordered_state_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_head bigint;
BEGIN
  IF NEW.state IN ('done', 'dead') AND OLD.state NOT IN ('done', 'dead') THEN
    IF NEW.state = 'dead' AND coalesce(
         (SELECT s.ordered_on_dead FROM crier.subscriptions s WHERE s.name = NEW.subscription), 'block') = 'block' THEN
      RETURN NULL; -- the dead head keeps its key: blocked, visible in crier.blocked_keys
    END IF;
    PERFORM crier.release_key(NEW.subscription, NEW.ordering_key, NEW.id);
  ELSIF OLD.state IN ('done', 'dead') AND NEW.state NOT IN ('done', 'dead') THEN
    INSERT INTO crier.ordered_keys AS k (subscription, key, head_id)
    VALUES (NEW.subscription, NEW.ordering_key, NEW.id)
    ON CONFLICT (subscription, key) DO UPDATE SET head_id = k.head_id
    RETURNING k.head_id INTO v_head;
    IF v_head <> NEW.id THEN
      -- Not the head: it queues behind the key's current head. (This UPDATE does not fire the
      -- trigger again: neither state is done or dead.)
      UPDATE crier.deliveries SET state = 'waiting' WHERE id = NEW.id;
    END IF;
  END IF;
  RETURN NULL;
END $$;
--> statement-breakpoint
-- 0006_roles: redefined trigger functions must run as their owner again.
ALTER FUNCTION crier.ordered_state_changed() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
--> statement-breakpoint
CREATE TRIGGER deliveries_ordered_state AFTER UPDATE OF state ON crier.deliveries
FOR EACH ROW
WHEN (NEW.ordering_key IS NOT NULL AND OLD.state <> NEW.state
      AND (NEW.state IN ('done', 'dead') OR OLD.state IN ('done', 'dead')))
EXECUTE FUNCTION crier.ordered_state_changed();
--> statement-breakpoint
-- Based on the body from 0005_delivery_guarantees.
CREATE OR REPLACE FUNCTION crier.complete(p_worker text, p_ids bigint[], p_attempts integer[])
RETURNS SETOF bigint
LANGUAGE sql AS $$
  SELECT crier.lock_ordered_keys(p_ids) WHERE EXISTS (SELECT 1 FROM crier.subscriptions WHERE ordered);
  UPDATE crier.deliveries d
  SET state = 'done', locked_until = NULL, finished_at = now(), updated_at = now()
  FROM unnest(p_ids, p_attempts) AS a(id, attempt)
  WHERE d.id = a.id AND d.attempts = a.attempt AND d.state = 'running' AND d.worker = p_worker
  RETURNING d.id
$$;
