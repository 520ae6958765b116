-- Delivery receipts without an error (message.sent, message.finalized: most of the webhooks
-- an organisation receives) are kept compactly and briefly: their event id, so a redelivery
-- is answered `duplicate`, and when they came; no body. Daily partitions (named
-- delivery_receipts_pYYYYMMDD, UTC days, each with a unique index on event_id) are created
-- ahead by beat and by the receiver, and dropped whole after RECEIPT_RETENTION_HOURS.
CREATE TABLE delivery_receipts (
    event_id    text NOT NULL,
    event_type  text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    signed_at   bigint
) PARTITION BY RANGE (received_at);
