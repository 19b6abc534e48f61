-- Least privilege (docs/security.md): four group roles, each able to do its one job and nothing more.
--
--   <prefix>_publisher  publish (TypeScript INSERT into crier.events, or crier.publish); sees only
--                       the rows its own transaction inserted, nothing else
--   <prefix>_worker     claim, ack, heartbeat, release, rescue, mark processed, create a missing
--                       subscription: only for the subscriptions that crier.subscription_grants
--                       gives to one of its roles; never change a subscription's topics or policies
--   <prefix>_operator   create/change subscriptions, requeue, replay, pause, prune: every row, and
--                       every crier function
--   <prefix>_auditor    SELECT on crier's views, nothing else
--
-- Roles are cluster-wide but crier's schema is per database and per tenant, and creating roles needs
-- CREATEROLE, which the migrating user should not need. So an administrator runs
-- `SELECT crier.create_roles()` (default prefix: the schema name) once per database. The grants are
-- derived from the schema as it is (its columns, functions and views), by crier.grant_roles, and
-- migrate() derives them again for every prefix set up here whenever it changed anything: no
-- redefinition of a function or view can lose a grant. The roles are NOLOGIN groups: grant them to
-- login users.
--
-- Rows are limited with row-level security. The worker functions stay SECURITY INVOKER, so that the
-- policies apply to them; only the functions that write crier's internal tables on behalf of
-- publishers and workers (crier.fan_out, crier.enqueue, crier.invalidate_routes, the ordering and
-- catalog triggers, crier.publish_idempotent, which alone reaches the idempotency keys) run as
-- their owner, each declared so in its own file.

-- The columns of a table but the given ones, as a GRANT column list. Computed at grant time, so
-- columns added later are granted when the grants are derived again.
CREATE OR REPLACE FUNCTION crier.column_list(p_table regclass, p_except text[]) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum)
  FROM pg_attribute
  WHERE attrelid = p_table AND attnum > 0 AND NOT attisdropped AND attname <> ALL (p_except)
$$;

-- Creates the four roles (those missing) and grants them their rights; returns their names.
CREATE OR REPLACE FUNCTION crier.create_roles(p_prefix text DEFAULT 'crier') RETURNS SETOF text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_role text;
BEGIN
  IF p_prefix IS NULL OR p_prefix !~ '^[a-z_][a-z0-9_]{0,40}$' THEN
    RAISE EXCEPTION 'CRIER_INVALID_OPTION: role prefix % is not valid: lower-case letters, digits and "_", at most 41 characters',
      coalesce(quote_literal(p_prefix), 'NULL') USING ERRCODE = '22023';
  END IF;
  FOREACH v_role IN ARRAY ARRAY[p_prefix || '_publisher', p_prefix || '_worker', p_prefix || '_operator', p_prefix || '_auditor'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = v_role) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
    END IF;
    RETURN NEXT v_role;
  END LOOP;
  PERFORM crier.grant_roles(p_prefix);
END $$;

-- The rights of the four roles of p_prefix, derived from the schema as it is now. Needs no
-- CREATEROLE: the owner of crier's objects may run it, and migrate() does.
CREATE OR REPLACE FUNCTION crier.grant_roles(p_prefix text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_publisher text := p_prefix || '_publisher';
  v_worker text := p_prefix || '_worker';
  v_operator text := p_prefix || '_operator';
  v_auditor text := p_prefix || '_auditor';
  -- The extension points: functions each role may call, by name (every overload). The operator
  -- gets every function and procedure of the schema except the administrative ones listed in
  -- v_admin_functions.
  v_publisher_functions text[] := ARRAY['publish', 'publish_idempotent', 'topic_valid', 'limit_bytes', 'check_bytes',
                                        'event_within_limits'];
  v_worker_functions text[] := ARRAY[
    'claim', 'next_due_in', 'complete', 'fail', 'extend_leases', 'release', 'rescue_expired',
    'park', 'unpark', 'wake', 'topic_valid', 'topic_pattern_valid', 'topic_patterns_valid',
    'topic_pattern_regex', 'topic_matches', 'mark_processed', 'is_processed', 'lock_ordered_keys',
    'claim_or_idle', 'limit_bytes', 'topic_pattern_head', 'topic_pattern_heads', 'register_worker', 'worker_stopped',
    'worker_poll', 'claim_many', 'extend_partitions'];
  -- add_partition runs DDL as the owner on the table it is given: only extend_partitions (which
  -- any role may trigger) calls it.
  v_admin_functions text[] := ARRAY['create_roles', 'grant_roles', 'drop_roles', 'role_prefixes',
                                     'refresh_grants', 'column_list', 'add_partition'];
  -- Runs as its owner and inserts events: an operator, who may not publish, does not get it.
  v_publishing_functions text[] := ARRAY['publish_idempotent'];
  -- A row belongs to the worker when one of its roles was granted the row's subscription.
  v_granted text := '%s IN (SELECT g.subscription FROM crier.subscription_grants g'
                    ' WHERE pg_has_role(current_user, g.role, ''MEMBER''))';
  v_fn regprocedure;
  v_view regclass;
  v_policy record;
BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA "crier" TO %I, %I, %I, %I', v_publisher, v_worker, v_operator, v_auditor);
  REVOKE ALL ON ALL ROUTINES IN SCHEMA "crier" FROM PUBLIC;
  -- From scratch, so that a right granted by an older version and not by this one is taken back on
  -- upgrade (GRANT only ever adds). Column privileges go with the table's.
  EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA "crier" FROM %I, %I, %I, %I', v_publisher, v_worker, v_operator, v_auditor);
  EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA "crier" FROM %I, %I, %I, %I', v_publisher, v_worker, v_operator, v_auditor);

  -- Table privileges (which columns); the policies below say which rows.
  -- id too: a publish with an idempotency key draws the id first (OVERRIDING SYSTEM VALUE).
  EXECUTE format('GRANT INSERT (%s) ON crier.events TO %I',
                 crier.column_list('crier.events', ARRAY['created_at']), v_publisher);
  EXECUTE format('GRANT SELECT ON crier.events TO %I', v_publisher);
  EXECUTE format('GRANT USAGE ON SEQUENCE %s TO %I', pg_get_serial_sequence('crier.events', 'id'), v_publisher);
  -- No right on crier.idempotency_keys: crier.publish_idempotent (publish.sql) writes a key and its
  -- event together, so no publisher can read other producers' keys or take one for a made-up event.

  EXECUTE format('GRANT SELECT ON crier.events, crier.deliveries, crier.subscriptions, crier.subscription_grants TO %I', v_worker);
  EXECUTE format('GRANT UPDATE (%s) ON crier.deliveries TO %I',
                 crier.column_list('crier.deliveries', ARRAY['id', 'event_id', 'subscription', 'created_at']), v_worker);
  -- DELETE: crier.complete deletes, rather than marks done, a delivery of a subscription with
  -- history 'failures' that succeeded at its first attempt. Only rows of granted subscriptions (the
  -- policy below), which the worker may already rewrite through UPDATE.
  EXECUTE format('GRANT DELETE ON crier.deliveries TO %I', v_worker);
  -- A worker creates a granted subscription that does not exist yet (its first start), and never
  -- changes one: widening its topics would bring it every topic's events. Topics, policies and
  -- pausing are the operator's (crier.create_subscription, pause_subscription).
  EXECUTE format('GRANT INSERT (name, topics, max_attempts, backoff_base_ms, backoff_max_ms, lease_ms, ordered, ordered_on_dead, history) ON crier.subscriptions TO %I', v_worker);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON crier.parked_workers TO %I', v_worker);
  EXECUTE format('GRANT SELECT, INSERT ON crier.processed TO %I', v_worker);
  -- A worker registers itself, is seen by its heartbeat, and prunes the rows of workers gone for a
  -- day (crier.register_worker). Who runs where is no secret among workers: no row policy here.
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON crier.registered_workers TO %I', v_worker);

  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON crier.deliveries TO %I', v_operator);
  EXECUTE format('GRANT SELECT, DELETE ON crier.events TO %I', v_operator);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON crier.subscriptions TO %I', v_operator);
  EXECUTE format('GRANT SELECT ON crier.subscription_grants TO %I', v_operator);
  -- DELETE: crier.remove_subscription forgets the subscription's parked workers.
  EXECUTE format('GRANT SELECT, DELETE ON crier.parked_workers TO %I', v_operator);
  EXECUTE format('GRANT SELECT, DELETE ON crier.registered_workers TO %I', v_operator);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON crier.ordered_keys, crier.idempotency_keys, crier.processed TO %I', v_operator);
  EXECUTE format('GRANT USAGE ON SEQUENCE %s TO %I', pg_get_serial_sequence('crier.deliveries', 'id'), v_operator);

  FOR v_view IN
    SELECT c.oid::regclass FROM pg_class c
    WHERE c.relnamespace = 'crier'::regnamespace AND c.relkind IN ('v', 'm')
  LOOP
    EXECUTE format('GRANT SELECT ON %s TO %I, %I', v_view, v_auditor, v_operator);
  END LOOP;

  -- Functions.
  FOR v_fn IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.pronamespace = 'crier'::regnamespace AND p.proname = ANY (v_publisher_functions) LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', v_fn, v_publisher);
  END LOOP;
  FOR v_fn IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.pronamespace = 'crier'::regnamespace AND p.proname = ANY (v_worker_functions) LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', v_fn, v_worker);
  END LOOP;
  FOR v_fn IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.pronamespace = 'crier'::regnamespace AND p.prokind IN ('f', 'p') LOOP
    IF (SELECT proname FROM pg_proc WHERE oid = v_fn) = ANY (v_admin_functions || v_publishing_functions) THEN
      EXECUTE format('REVOKE EXECUTE ON ROUTINE %s FROM %I', v_fn, v_operator);
    ELSE
      EXECUTE format('GRANT EXECUTE ON ROUTINE %s TO %I', v_fn, v_operator);
    END IF;
  END LOOP;

  -- Rows. The table owner (the migrating user) and superusers bypass these; other roles see only
  -- what a policy gives them.
  ALTER TABLE crier.events ENABLE ROW LEVEL SECURITY;
  ALTER TABLE crier.deliveries ENABLE ROW LEVEL SECURITY;
  ALTER TABLE crier.subscriptions ENABLE ROW LEVEL SECURITY;
  ALTER TABLE crier.parked_workers ENABLE ROW LEVEL SECURITY;
  ALTER TABLE crier.processed ENABLE ROW LEVEL SECURITY;
  FOR v_policy IN SELECT * FROM (VALUES
    -- A publisher reads back only the rows its transaction inserted (for RETURNING): created_at
    -- defaults to now(), the transaction's start, and a publisher may not set it.
    ('crier.events', v_publisher, 'insert', 'INSERT', NULL, 'true'),
    ('crier.events', v_publisher, 'own', 'SELECT', 'created_at = now()', NULL),
    -- A worker reads the events its subscriptions received, and the rest of its own rows only.
    ('crier.events', v_worker, 'delivered', 'SELECT',
       'EXISTS (SELECT 1 FROM crier.deliveries d WHERE d.event_id = events.id)', NULL),
    ('crier.deliveries', v_worker, 'granted', 'ALL', format(v_granted, 'subscription'), format(v_granted, 'subscription')),
    ('crier.subscriptions', v_worker, 'granted', 'ALL', format(v_granted, 'name'), format(v_granted, 'name')),
    ('crier.parked_workers', v_worker, 'granted', 'ALL', format(v_granted, 'subscription'), format(v_granted, 'subscription')),
    ('crier.processed', v_worker, 'granted', 'ALL', format(v_granted, 'subscription'), format(v_granted, 'subscription')),
    ('crier.events', v_operator, 'all', 'ALL', 'true', 'true'),
    ('crier.deliveries', v_operator, 'all', 'ALL', 'true', 'true'),
    ('crier.subscriptions', v_operator, 'all', 'ALL', 'true', 'true'),
    ('crier.parked_workers', v_operator, 'all', 'ALL', 'true', 'true'),
    ('crier.processed', v_operator, 'all', 'ALL', 'true', 'true')
  ) AS p(tbl, role, suffix, command, using_expr, check_expr) LOOP
    IF EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = v_policy.tbl::regclass
                AND polname = v_policy.role || '_' || v_policy.suffix) THEN
      EXECUTE format('DROP POLICY %I ON %s', v_policy.role || '_' || v_policy.suffix, v_policy.tbl);
    END IF;
    EXECUTE format('CREATE POLICY %I ON %s FOR %s TO %I', v_policy.role || '_' || v_policy.suffix, v_policy.tbl,
                   v_policy.command, v_policy.role)
         || coalesce(' USING (' || v_policy.using_expr || ')', '')
         || coalesce(' WITH CHECK (' || v_policy.check_expr || ')', '');
  END LOOP;
END $$;

-- Undoes create_roles in this database and drops the roles (they must hold no privileges in other
-- databases; Postgres says which if they do).
CREATE OR REPLACE FUNCTION crier.drop_roles(p_prefix text DEFAULT 'crier') RETURNS SETOF text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_role text;
  v_policy record;
BEGIN
  FOREACH v_role IN ARRAY ARRAY[p_prefix || '_publisher', p_prefix || '_worker', p_prefix || '_operator', p_prefix || '_auditor'] LOOP
    CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = v_role);
    FOR v_policy IN SELECT * FROM pg_policies WHERE schemaname = 'crier' AND v_role = ANY (roles) LOOP
      EXECUTE format('DROP POLICY %I ON %I.%I', v_policy.policyname, v_policy.schemaname, v_policy.tablename);
    END LOOP;
    DELETE FROM crier.subscription_grants WHERE role = v_role::regrole;
    EXECUTE format('DROP OWNED BY %I', v_role);
    EXECUTE format('DROP ROLE %I', v_role);
    RETURN NEXT v_role;
  END LOOP;
END $$;

-- The prefixes whose four roles create_roles set up in this schema.
CREATE OR REPLACE FUNCTION crier.role_prefixes() RETURNS SETOF text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT left(r.rolname, -length('_publisher')) FROM pg_roles r
  WHERE r.rolname LIKE '%\_publisher'
    AND has_schema_privilege(r.oid, 'crier', 'USAGE')
    AND (SELECT count(*) FROM pg_roles o
         WHERE o.rolname IN (left(r.rolname, -length('_publisher')) || '_worker',
                             left(r.rolname, -length('_publisher')) || '_operator',
                             left(r.rolname, -length('_publisher')) || '_auditor')) = 3
  ORDER BY 1
$$;

-- What migrate() runs after changing anything: no routine is callable by PUBLIC (Postgres grants
-- EXECUTE to PUBLIC on every new function, and a per-schema default privilege cannot revoke that),
-- and every role set
-- gets the rights of the schema as it now is (a function dropped and created again lost its grants).
CREATE OR REPLACE FUNCTION crier.refresh_grants() RETURNS SETOF text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_prefix text;
BEGIN
  REVOKE ALL ON ALL ROUTINES IN SCHEMA "crier" FROM PUBLIC;
  FOR v_prefix IN SELECT crier.role_prefixes() LOOP
    PERFORM crier.grant_roles(v_prefix);
    RETURN NEXT v_prefix;
  END LOOP;
END $$;
