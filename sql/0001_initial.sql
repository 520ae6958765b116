-- optout-sync initial schema: the webhook inbox, consent state, and the append-only audit log.

-- Every verified webhook, raw body kept byte for byte, keyed by Telnyx's data.id.
CREATE TABLE webhook_events (
    pk               bigserial PRIMARY KEY,
    event_id         text UNIQUE,          -- data.id; NULL only when a verified body had none
    event_type       text,
    status           text NOT NULL
                     CHECK (status IN ('pending', 'processed', 'failed', 'invalid', 'ignored')),
    raw_body         bytea NOT NULL,
    signed_at        bigint,               -- the telnyx-timestamp header
    received_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    processed_at     timestamptz,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_error       text,
    outcome          text                  -- what the worker decided, e.g. opt_out, ordinary
);
-- The worker's claim query walks only pending rows.
CREATE INDEX webhook_events_pending ON webhook_events (next_attempt_at, pk) WHERE status = 'pending';
CREATE INDEX webhook_events_problems ON webhook_events (status, pk)
    WHERE status IN ('failed', 'invalid');

-- Consent per (messaging profile, subscriber): Telnyx's block rules are per profile.
CREATE TABLE subscribers (
    messaging_profile_id text NOT NULL,
    phone_number         text NOT NULL,
    status               text NOT NULL
                         CHECK (status IN ('unknown', 'opted_in', 'opted_out', 'review')),
    last_occurred_at     timestamptz,      -- occurred_at of the event that set status
    last_event_id        text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (messaging_profile_id, phone_number)
);

-- Toll-free carrier-level blocks, per (toll-free number, subscriber), independent of profiles.
CREATE TABLE carrier_blocks (
    toll_free_number     text NOT NULL,
    phone_number         text NOT NULL,
    blocked              boolean NOT NULL,
    since                timestamptz NOT NULL,  -- occurred_at of the event that set `blocked`
    last_occurred_at     timestamptz NOT NULL,
    last_event_id        text NOT NULL,
    messaging_profile_id text,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (toll_free_number, phone_number)
);
CREATE INDEX carrier_blocks_by_subscriber ON carrier_blocks (phone_number);

-- The compliance trail. seq is gap-free and assigned under a lock with the hash chain.
CREATE TABLE audit_log (
    seq                  bigint PRIMARY KEY CHECK (seq > 0),
    recorded_at          timestamptz NOT NULL,
    event_id             text,
    message_id           text,
    occurred_at          timestamptz,
    received_at          timestamptz,
    messaging_profile_id text NOT NULL,
    phone_number         text NOT NULL,
    our_number           text,
    country              text,
    action               text NOT NULL CHECK (action IN (
                             'opt_out', 'opt_in', 'help', 'possible_opt_out', 'carrier_block',
                             'carrier_unblock', 'custom', 'review_confirmed', 'review_dismissed')),
    source               text NOT NULL CHECK (source IN (
                             'telnyx', 'keyword', 'intent', 'operator', 'reconcile')),
    text                 text,
    autoresponse_type    text,
    previous_status      text,
    new_status           text,
    superseded           boolean NOT NULL DEFAULT false,
    telnyx_block         boolean NOT NULL DEFAULT false,
    prev_hash            text NOT NULL,
    hash                 text NOT NULL UNIQUE
);
-- One row per (event, action): a redelivered or replayed event can never be audited twice.
CREATE UNIQUE INDEX audit_log_event_action ON audit_log (event_id, action)
    WHERE event_id IS NOT NULL;
CREATE INDEX audit_log_by_subscriber ON audit_log (phone_number, messaging_profile_id, seq);
CREATE INDEX audit_log_by_recorded_at ON audit_log (recorded_at);

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
