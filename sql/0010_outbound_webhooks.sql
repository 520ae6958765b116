-- Outbound webhooks (spec §11): the organisation's receivers, and a durable outbox written
-- in the same transaction as the audit rows it announces.
CREATE TABLE endpoints (
    id                    text PRIMARY KEY,           -- ep_<hex>
    url                   text NOT NULL,
    secret                text NOT NULL,              -- whsec_<base64>, Standard Webhooks
    event_types           text[],                     -- NULL: every type
    messaging_profile_id  text,                       -- NULL: every profile
    enabled               boolean NOT NULL DEFAULT true,
    disabled_reason       text,
    failing_since         timestamptz,                -- the first failure of the current run
    created_at            timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE outbox (
    id               bigserial PRIMARY KEY,
    endpoint_id      text NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    audit_seq        bigint NOT NULL,
    event_type       text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    delivered_at     timestamptz,
    last_error       text,
    UNIQUE (endpoint_id, audit_seq)                   -- webhook-id is stable per the pair
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';

CREATE TABLE delivery_attempts (
    outbox_id     bigint NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    attempted_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    status_code   int,                                -- NULL when no answer came
    error         text,
    duration_ms   int NOT NULL
);
CREATE INDEX delivery_attempts_by_outbox ON delivery_attempts (outbox_id, attempted_at);
