-- Opt-outs learnt from Telnyx's send errors (spec §12): a 40300 "Blocked due to STOP
-- message" on a message.sent or message.finalized, or reported by a sender.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_source_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_source_check CHECK (source IN (
    'telnyx', 'keyword', 'intent', 'operator', 'reconcile', 'api', 'telnyx_send_block'));
