-- Views: the stable face for SQL users, auditors and `crier status`; the tables behind them may
-- change. CREATE OR REPLACE VIEW can only append columns: a change that removes or reorders one
-- must DROP VIEW first (and crier.find_dead, which returns crier.dead_letters rows, with it).

-- One row per event x delivery; an event no subscription received appears once, with NULL delivery
-- columns. status is state with "retrying" told apart from a first "pending". A subscription with
-- history 'failures' keeps no row of a delivery that succeeded at its first attempt (crier.complete
-- deletes it), so such an event has no row of that subscription here, or appears once with NULL
-- delivery columns when no subscription kept one: the event itself is always here.
CREATE OR REPLACE VIEW crier.event_history AS
SELECT e.id AS event_id, e.uuid AS event_uuid, e.topic, e.key, e.payload, e.headers,
       e.created_at AS published_at,
       d.id AS delivery_id, d.subscription, d.state,
       CASE WHEN d.state = 'pending' AND d.attempts > 0 THEN 'retrying' ELSE d.state END AS status,
       d.attempts, d.available_at, d.worker, d.locked_until, d.last_error, d.last_error_stack,
       d.errors, d.created_at AS queued_at, d.started_at, d.finished_at, d.updated_at
FROM crier.events e
LEFT JOIN crier.deliveries d ON d.event_id = e.id;

-- The dead deliveries, with their events.
CREATE OR REPLACE VIEW crier.dead_letters AS
SELECT d.id AS delivery_id, d.subscription, d.event_id, e.uuid AS event_uuid, e.topic, e.key,
       d.attempts, d.last_error, d.last_error_stack, d.errors, d.worker,
       e.created_at AS published_at, d.finished_at AS died_at, e.payload, e.headers,
       d.started_at AS last_attempt_started_at
FROM crier.deliveries d
JOIN crier.events e ON e.id = d.event_id
WHERE d.state = 'dead';

-- Keys of ordered subscriptions that are stuck: their head is dead (policy 'block') or gone.
CREATE OR REPLACE VIEW crier.blocked_keys AS
SELECT k.subscription, k.key, k.head_id AS dead_delivery_id, d.event_id, d.attempts,
       d.last_error, coalesce(d.finished_at, k.since) AS blocked_since,
       (SELECT count(*) FROM crier.deliveries w
        WHERE w.subscription = k.subscription AND w.ordering_key = k.key AND w.state = 'waiting') AS waiting
FROM crier.ordered_keys k
LEFT JOIN crier.deliveries d ON d.id = k.head_id
WHERE d.id IS NULL OR d.state = 'dead';

-- Worker processes seen in the last day (crier.registered_workers), with what they are doing:
--   status   live: seen within three heartbeats; stale: not seen since (killed, hung or cut off:
--            its running deliveries come back when their lease runs out); stopped: stopped cleanly
--   running  deliveries this worker holds now (claimed and not finished), from crier.deliveries
CREATE OR REPLACE VIEW crier.workers AS
SELECT w.id AS worker, w.host, w.pid, w.version, w.subscriptions,
       CASE WHEN w.stopped_at IS NOT NULL THEN 'stopped'
            WHEN w.last_seen_at >= now() - 3 * w.heartbeat_ms * interval '1 millisecond' THEN 'live'
            ELSE 'stale' END AS status,
       w.started_at, w.last_seen_at, w.stopped_at, w.heartbeat_ms,
       -- locked_until IS NOT NULL: every running delivery has a lease, and it lets the count read
       -- the small lease index instead of the whole table.
       (SELECT count(*) FROM crier.deliveries d
        WHERE d.worker = w.id AND d.locked_until IS NOT NULL AND d.state = 'running') AS running
FROM crier.registered_workers w;

-- The one definition of a stuck delivery (crier status, crier.subscription_gauges, the metrics):
-- running, making no progress, because its lease ran out or because the worker holding it is
-- registered and no longer live (stale or stopped; a worker that never registered, e.g. an older
-- crier, counts by its lease only). A rescue brings it back once its lease has run out (any live
-- worker of the schema runs it). stuck_since is when it stopped moving: its holder's last sign of
-- life, or its lease's end when that came first. locked_until IS NOT NULL reads the lease index.
CREATE OR REPLACE VIEW crier.stuck_deliveries AS
SELECT d.id AS delivery_id, d.subscription, d.worker, w.status AS worker_status, d.locked_until,
       CASE WHEN w.status IN ('stale', 'stopped') THEN least(d.locked_until, w.last_seen_at) ELSE d.locked_until END AS stuck_since
FROM crier.deliveries d
LEFT JOIN crier.workers w ON w.worker = d.worker
WHERE d.locked_until IS NOT NULL AND d.state = 'running'
  AND (d.locked_until < now() OR w.status IN ('stale', 'stopped'));

-- The numbers `crier status` prints. pending and retrying are disjoint: pending deliveries have
-- never been attempted (or were requeued), retrying ones wait for another attempt. lag is how long
-- the oldest due delivery has been waiting (NULL when nothing is due): a retry scheduled for later
-- is not lag. done is counted by a scan of the subscription's deliveries: prune keeps it cheap. It
-- counts the done rows kept: for a subscription with history 'failures' (column history), only the
-- deliveries that failed, or were requeued, before they succeeded.
--   waiting       deliveries of ordered subscriptions queued behind an earlier one of their key;
--                 no worker claims them until that one finishes
--   blocked_keys  keys whose head delivery is dead (policy 'block') or gone, so their waiting
--                 deliveries never move until it is requeued or crier.unblock_key is called
--   live_workers  workers of crier.workers that are live and serve this subscription
--   stuck         crier.stuck_deliveries of the subscription; stuck_since the oldest one's
CREATE OR REPLACE VIEW crier.subscription_stats AS
SELECT s.name AS subscription, s.topics, s.paused,
       coalesce(c.pending, 0) AS pending,
       coalesce(c.running, 0) AS running,
       coalesce(c.retrying, 0) AS retrying,
       coalesce(c.dead, 0) AS dead,
       coalesce(c.done, 0) AS done,
       c.oldest_pending_at,
       now() - c.oldest_due_at AS lag,
       extract(epoch FROM now() - c.oldest_due_at)::double precision AS lag_seconds,
       coalesce(c.waiting, 0) AS waiting,
       coalesce(b.blocked_keys, 0) AS blocked_keys,
       (SELECT count(*) FROM crier.workers w WHERE w.status = 'live' AND s.name = ANY (w.subscriptions)) AS live_workers,
       coalesce(st.stuck, 0) AS stuck,
       st.stuck_since,
       extract(epoch FROM now() - st.stuck_since)::double precision AS stuck_seconds,
       s.history
FROM crier.subscriptions s
LEFT JOIN (
  SELECT d.subscription,
         count(*) FILTER (WHERE d.state = 'pending' AND d.attempts = 0) AS pending,
         count(*) FILTER (WHERE d.state = 'pending' AND d.attempts > 0) AS retrying,
         count(*) FILTER (WHERE d.state = 'running') AS running,
         count(*) FILTER (WHERE d.state = 'dead') AS dead,
         count(*) FILTER (WHERE d.state = 'done') AS done,
         min(d.created_at) FILTER (WHERE d.state = 'pending') AS oldest_pending_at,
         min(d.available_at) FILTER (WHERE d.state = 'pending' AND d.available_at <= now()) AS oldest_due_at,
         count(*) FILTER (WHERE d.state = 'waiting') AS waiting
  FROM crier.deliveries d
  GROUP BY d.subscription
) c ON c.subscription = s.name
LEFT JOIN (
  SELECT k.subscription, count(*) AS blocked_keys FROM crier.blocked_keys k GROUP BY k.subscription
) b ON b.subscription = s.name
LEFT JOIN (
  SELECT k.subscription, count(*) AS stuck, min(k.stuck_since) AS stuck_since
  FROM crier.stuck_deliveries k GROUP BY k.subscription
) st ON st.subscription = s.name;

-- select * from crier.catalog;  -- one row per topic, as `crier catalog list` prints it
CREATE OR REPLACE VIEW crier.catalog AS
SELECT t.topic, t.latest_version, t.validate, t.description,
       array_agg(v.version ORDER BY v.version) AS versions,
       t.registered_at, t.updated_at
FROM crier.catalog_topics t
JOIN crier.catalog_versions v ON v.topic = t.topic
GROUP BY t.topic;

-- select * from crier.storage;  -- bytes on disk of the log and the deliveries, over their partitions
-- (pg_total_relation_size of a partitioned table is 0: its rows live in the partitions,
-- partitions.sql). table_bytes counts heap and TOAST; rows are the statistics' estimates.
CREATE OR REPLACE VIEW crier.storage AS
SELECT p.name AS table_name,
       count(*)::integer AS partitions,
       sum(pg_table_size(t.relid))::bigint AS table_bytes,
       sum(pg_indexes_size(t.relid))::bigint AS index_bytes,
       sum(s.n_live_tup)::bigint AS live_rows,
       sum(s.n_dead_tup)::bigint AS dead_rows,
       sum(s.autovacuum_count)::bigint AS autovacuums
FROM unnest(ARRAY['events', 'deliveries']) AS p(name)
CROSS JOIN LATERAL pg_partition_tree(('crier.' || p.name)::regclass) t
LEFT JOIN pg_stat_user_tables s ON s.relid = t.relid
WHERE t.isleaf
GROUP BY p.name;
