-- What a metrics exporter reads on every scrape (crier/prometheus, `crier metrics`): numbers that
-- cost what the live work costs, never what the history costs. crier.subscription_stats also
-- counts done deliveries, a scan of every delivery a subscription ever had: right for
-- `crier status`, too slow to run every 15 seconds on a table of millions of finished rows.
-- Each count here reads one partial index (docs/observability.md#metrics has the plans):
--   pending rows      deliveries_pending_idx  (state = 'pending')
--   running rows      deliveries_lease_idx    (locked_until IS NOT NULL: exactly the running rows;
--                                              every way out of running clears locked_until)
--   dead rows         deliveries_dead_idx     (state = 'dead')
--   waiting rows      deliveries_waiting_idx  (state = 'waiting')
--   blocked keys      crier.blocked_keys      (crier.ordered_keys: one row per active key)
-- pending is split three ways that add up to every pending delivery:
--   backlog   due now and not claimed (first attempts and due retries): the work waiting for a worker
--   retrying  failed before, next attempt scheduled later
--   delayed   never attempted, published with a delay that has not passed yet
-- oldest_due_age_seconds is crier.subscription_stats' lag: how long the oldest due delivery has
-- been waiting (0 when nothing is due). stuck and oldest_stuck_seconds read crier.stuck_deliveries
-- (views.sql), the same stuck deliveries `crier status` shows.
CREATE OR REPLACE VIEW crier.subscription_gauges AS
SELECT s.name AS subscription, s.paused,
       due.backlog,
       coalesce(extract(epoch FROM now() - due.oldest_due_at), 0)::double precision AS oldest_due_age_seconds,
       later.retrying,
       later.delayed,
       coalesce(r.running, 0) AS running,
       coalesce(st.stuck, 0) AS stuck,
       coalesce(extract(epoch FROM now() - st.stuck_since), 0)::double precision AS oldest_stuck_seconds,
       dead.dead,
       waiting.waiting,
       coalesce(b.blocked_keys, 0) AS blocked_keys
FROM crier.subscriptions s
-- Per subscription (LATERAL), so that each count is a range of its partial index, read index-only
-- where the index has the columns.
CROSS JOIN LATERAL (
  SELECT count(*) AS backlog, min(d.available_at) AS oldest_due_at FROM crier.deliveries d
  WHERE d.subscription = s.name AND d.state = 'pending' AND d.available_at <= now()
) due
CROSS JOIN LATERAL (
  SELECT count(*) FILTER (WHERE d.attempts > 0) AS retrying, count(*) FILTER (WHERE d.attempts = 0) AS delayed
  FROM crier.deliveries d
  WHERE d.subscription = s.name AND d.state = 'pending' AND d.available_at > now()
) later
CROSS JOIN LATERAL (
  SELECT count(*) AS dead FROM crier.deliveries d WHERE d.subscription = s.name AND d.state = 'dead'
) dead
CROSS JOIN LATERAL (
  SELECT count(*) AS waiting FROM crier.deliveries d WHERE d.subscription = s.name AND d.state = 'waiting'
) waiting
-- The lease index has no subscription column: one pass over the leased (running) rows for all.
LEFT JOIN (
  SELECT d.subscription,
         count(*) FILTER (WHERE d.state = 'running') AS running
  FROM crier.deliveries d WHERE d.locked_until IS NOT NULL GROUP BY d.subscription
) r ON r.subscription = s.name
LEFT JOIN (
  SELECT k.subscription, count(*) AS stuck, min(k.stuck_since) AS stuck_since
  FROM crier.stuck_deliveries k GROUP BY k.subscription
) st ON st.subscription = s.name
LEFT JOIN (
  SELECT k.subscription, count(*) AS blocked_keys FROM crier.blocked_keys k GROUP BY k.subscription
) b ON b.subscription = s.name;

-- The log's topics and publish times, for an exporter's crier_published_total: each scrape counts
-- the events published (committed) in a window, by topic, WHERE published_at in [from, to). A view
-- rather than a function so that the auditor role reads it like the other views. published_at is
-- the publishing transaction's start, and a transaction can commit long after it started: an
-- exporter counts only up to a moment some seconds back (a transaction still open after that
-- settle time is missed). The window reads crier.events' BRIN index on created_at: the cost
-- follows the events of the window, not the length of the log.
CREATE OR REPLACE VIEW crier.published_events AS
SELECT e.id AS event_id, e.topic, e.created_at AS published_at FROM crier.events e;
