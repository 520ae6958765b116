-- The console (spec §14).

-- What people did through the console that is not a consent event (consent decisions go to
-- audit_log): sign-ins, replays, endpoint tests, exports. Written in the action's transaction.
CREATE TABLE operator_actions (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    operator text NOT NULL,
    action   text NOT NULL,
    target   text NOT NULL DEFAULT '',
    detail   text NOT NULL DEFAULT ''
);

-- Audit rows per UTC day and action, kept by audit_log.append under the chain's lock, so the
-- overview's chart reads a few dozen rows instead of counting a month of the log.
CREATE TABLE audit_daily (
    day    date NOT NULL,
    action text NOT NULL,
    rows   bigint NOT NULL,
    PRIMARY KEY (day, action)
);
INSERT INTO audit_daily (day, action, rows)
SELECT (recorded_at AT TIME ZONE 'UTC')::date, action, count(*)
FROM audit_log WHERE NOT superseded GROUP BY 1, 2;

-- Each `audit verify`: the overview shows the latest as the chain's status.
CREATE TABLE chain_checks (
    id           bigserial PRIMARY KEY,
    checked_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    intact_rows  bigint NOT NULL,
    head_seq     bigint,
    head_hash    text,
    broken_seq   bigint,
    problem      text
);

-- Drift (opt-outs learnt from Telnyx that we did not hold) is a handful of rows in a long
-- log: the overview counts it through this index. Its predicate is audit_log._DRIFT_KIND.
CREATE INDEX audit_log_drift ON audit_log (seq)
    WHERE action = 'opt_out' AND source IN ('reconcile', 'telnyx_send_block') AND NOT superseded;

-- An endpoint's latest attempts (the console's Endpoints page, `endpoints attempts`) read
-- from an index of their own, however many webhooks the other endpoints were sent.
ALTER TABLE delivery_attempts ADD COLUMN endpoint_id text;
UPDATE delivery_attempts d SET endpoint_id = o.endpoint_id FROM outbox o WHERE o.id = d.outbox_id;
ALTER TABLE delivery_attempts ALTER COLUMN endpoint_id SET NOT NULL;
CREATE INDEX delivery_attempts_by_endpoint ON delivery_attempts (endpoint_id, attempted_at DESC);
