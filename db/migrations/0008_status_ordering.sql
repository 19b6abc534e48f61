-- crier status sees per-key ordering (issue 6's 'waiting' state and crier.blocked_keys): two
-- columns appended to crier.subscription_stats, the stable face `crier status` reads. CREATE OR
-- REPLACE VIEW can only add columns at the end, so every earlier column stays as 0002 defined it
-- (and grants on the view are kept).
--   waiting       deliveries of ordered subscriptions queued behind an earlier one of their key;
--                 no worker claims them until that one finishes
--   blocked_keys  keys whose head delivery is dead (policy 'block') or gone, so their waiting
--                 deliveries never move until it is requeued or crier.unblock_key is called
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
       coalesce(b.blocked_keys, 0) AS blocked_keys
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
) b ON b.subscription = s.name;
