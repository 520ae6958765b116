-- The worker rewrites every inbox row once (status, outcome, processed_at). Keeping the raw
-- body out of line (uncompressed: the receiver should not pay for compression) makes that
-- rewrite a small tuple and a pointer instead of a copy of the whole body. Bodies already
-- stored stay where they are.
ALTER TABLE webhook_events ALTER COLUMN raw_body SET STORAGE EXTERNAL;
ALTER TABLE webhook_events SET (toast_tuple_target = 128);
