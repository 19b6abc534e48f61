-- Per-key ordering (docs/guarantees.md). For an ordered subscription, each active (subscription, key)
-- has one head in crier.ordered_keys; only the head is ever pending/running/dead. Every later
-- delivery of that key is 'waiting', which no claim ever reads (claim reads the pending index), so
-- a key with a long or blocked backlog costs the claim path nothing. When the head finishes (done,
-- or dead under the 'skip' policy) the next waiting delivery of the key, by id, becomes pending and
-- the head. The ordered_keys row lock serialises producers and acks of the same key. Deliveries
-- enter a key's queue in crier.enqueue (fan_out.sql), whoever creates them.
--
--   waiting --promoted (its head finished)--> pending --claim--> running --> done | pending | dead
--   dead (head, policy 'block') keeps the key blocked until it is requeued or crier.unblock_key.

-- The head of a key finished (done, dead-and-skipped, or given up by an operator): the next waiting
-- delivery of the key becomes pending and the head, or the key goes idle (its row is deleted).
-- Does nothing when p_delivery is not the key's head. The row lock waits for a producer that is
-- still inserting behind this key, so its delivery is seen here once it commits.
CREATE OR REPLACE FUNCTION crier.release_key(p_subscription text, p_key text, p_delivery bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_head bigint;
  v_next bigint;
BEGIN
  SELECT k.head_id INTO v_head FROM crier.ordered_keys k
  WHERE k.subscription = p_subscription AND k.key = p_key
  FOR UPDATE;
  IF NOT FOUND OR v_head IS DISTINCT FROM p_delivery THEN
    RETURN NULL;
  END IF;
  SELECT d.id INTO v_next FROM crier.deliveries d
  WHERE d.subscription = p_subscription AND d.ordering_key = p_key AND d.state = 'waiting'
  ORDER BY d.id
  LIMIT 1;
  IF v_next IS NULL THEN
    DELETE FROM crier.ordered_keys WHERE subscription = p_subscription AND key = p_key;
    RETURN NULL;
  END IF;
  UPDATE crier.ordered_keys SET head_id = v_next, since = now()
  WHERE subscription = p_subscription AND key = p_key;
  UPDATE crier.deliveries SET state = 'pending', updated_at = now() WHERE id = v_next;
  IF EXISTS (SELECT 1 FROM crier.parked_workers p WHERE p.subscription = p_subscription) THEN
    PERFORM crier.wake(ARRAY[p_subscription]);
  END IF;
  RETURN v_next;
END $$;

-- Keeps the heads true whatever changes a delivery's state (complete, fail, rescue_expired, an
-- operator's requeue; a head deleted instead: below): a head that finishes hands its key on; a finished delivery brought back
-- (requeue) queues behind the key's current head instead of overtaking it. Runs as its owner: the
-- workers and operators whose updates fire it need no rights on crier.ordered_keys.
CREATE OR REPLACE FUNCTION crier.ordered_state_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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

CREATE OR REPLACE TRIGGER deliveries_ordered_state AFTER UPDATE OF state ON crier.deliveries
FOR EACH ROW
WHEN (NEW.ordering_key IS NOT NULL AND OLD.state <> NEW.state
      AND (NEW.state IN ('done', 'dead') OR OLD.state IN ('done', 'dead')))
EXECUTE FUNCTION crier.ordered_state_changed();
-- An AFTER trigger, not BEFORE: a BEFORE UPDATE row trigger makes Postgres lock each row before the
-- update whatever its WHEN says (one more WAL record per claim and per ack); an AFTER trigger's WHEN
-- is checked first, so unordered deliveries (and claims, retries, releases) cost nothing here.

-- A head deleted before it reached done or dead hands its key on too: crier.complete deletes,
-- rather than marks done, a delivery of a subscription with history 'failures' that succeeded at its
-- first attempt (deliveries/ack.sql), and the key's next delivery must become pending as after any
-- finished head. (crier.remove_subscription deleting a running or pending head frees its key the
-- same way.) A dead head that is deleted (crier.prune_deliveries with p_dead) keeps its key blocked,
-- as it was while the row existed: crier.blocked_keys lists it as gone, crier.unblock_key frees it.
CREATE OR REPLACE FUNCTION crier.ordered_head_deleted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM crier.release_key(OLD.subscription, OLD.ordering_key, OLD.id);
  RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER deliveries_ordered_delete AFTER DELETE ON crier.deliveries
FOR EACH ROW
WHEN (OLD.ordering_key IS NOT NULL AND OLD.state IN ('pending', 'running'))
EXECUTE FUNCTION crier.ordered_head_deleted();

-- Acks of many deliveries lock their keys in (subscription, key) order before touching any row,
-- the order producers lock them in (crier.fan_out): otherwise a batched ack and a producer of the
-- same keys could deadlock. Costs nothing while no subscription is ordered. Runs as its owner, like
-- the trigger above.
CREATE OR REPLACE FUNCTION crier.lock_ordered_keys(p_ids bigint[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM crier.subscriptions WHERE ordered) THEN
    PERFORM 1 FROM crier.ordered_keys k
    JOIN crier.deliveries d ON d.subscription = k.subscription AND d.ordering_key = k.key
    WHERE d.id = ANY (p_ids)
    ORDER BY k.subscription, k.key
    FOR UPDATE OF k;
  END IF;
END $$;

-- Operator: lets the key of a dead head move on without requeuing it (the dead delivery stays dead),
-- or frees a key whose head was deleted. Returns the delivery that became the head, if any.
CREATE OR REPLACE FUNCTION crier.unblock_key(p_subscription text, p_key text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_head bigint;
BEGIN
  SELECT k.head_id INTO v_head FROM crier.ordered_keys k
  LEFT JOIN crier.deliveries d ON d.id = k.head_id
  WHERE k.subscription = p_subscription AND k.key = p_key AND (d.id IS NULL OR d.state = 'dead');
  IF v_head IS NULL THEN
    RETURN NULL;
  END IF;
  RETURN crier.release_key(p_subscription, p_key, v_head);
END $$;
