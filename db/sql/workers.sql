-- Worker processes registering themselves (crier.registered_workers; read through crier.workers in
-- views.sql). A worker registers when it starts and marks itself stopped on a clean stop; its
-- heartbeat (crier.extend_leases, deliveries/leases.sql) keeps last_seen_at fresh, so being seen
-- costs no round trip of its own. A worker that dies without stopping simply stops being seen.

-- Registers (or re-registers) a worker; prunes the rows of workers gone for more than a day, so the
-- table holds the fleet of the last day and no history beyond it.
CREATE OR REPLACE FUNCTION crier.register_worker(p_worker text, p_host text, p_pid integer, p_version text,
                                                 p_subscriptions text[], p_heartbeat_ms integer) RETURNS void
LANGUAGE sql AS $$
  DELETE FROM crier.registered_workers WHERE coalesce(stopped_at, last_seen_at) < now() - interval '1 day';
  INSERT INTO crier.registered_workers AS w (id, host, pid, version, subscriptions, heartbeat_ms)
  VALUES (p_worker, p_host, p_pid, p_version, p_subscriptions, p_heartbeat_ms)
  ON CONFLICT (id) DO UPDATE
  SET host = excluded.host, pid = excluded.pid, version = excluded.version, subscriptions = excluded.subscriptions,
      heartbeat_ms = excluded.heartbeat_ms, started_at = now(), last_seen_at = now(), stopped_at = NULL;
$$;

-- A clean stop: the worker handed back what it held and is gone.
CREATE OR REPLACE FUNCTION crier.worker_stopped(p_worker text) RETURNS void
LANGUAGE sql AS $$
  UPDATE crier.registered_workers SET stopped_at = now(), last_seen_at = now() WHERE id = p_worker;
$$;
