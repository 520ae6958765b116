-- Possible opt-outs held for review (POSSIBLE_OPT_OUT_POLICY=review).
-- A subscriber now keeps two registers, each won by the latest event per (occurred_at, id):
--   consent: the last STOP/START (last_occurred_at, last_event_id as before), and
--   review:  the last possible opt-out and what an operator decided about it.
-- `status` stays the effective status that can-send reads: opted_out beats everything; a
-- pending review newer than the last consent event holds the number; else consent.
ALTER TABLE subscribers
    ADD COLUMN consent_status text NOT NULL DEFAULT 'unknown'
        CHECK (consent_status IN ('unknown', 'opted_in', 'opted_out')),
    ADD COLUMN review_state text CHECK (review_state IN ('pending', 'confirmed', 'dismissed')),
    ADD COLUMN review_occurred_at timestamptz,
    ADD COLUMN review_event_id text;

UPDATE subscribers SET consent_status = status WHERE status IN ('opted_in', 'opted_out');

CREATE INDEX subscribers_in_review ON subscribers (review_occurred_at) WHERE status = 'review';
