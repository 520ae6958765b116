-- Consent from every channel (spec §10): an audit row may say how consent came besides SMS,
-- and hold the SHA-256 of its evidence, which the chain covers. Rows without them hash as
-- before (consent.audit_chain), so the chain so far still verifies.
ALTER TABLE audit_log
    ADD COLUMN channel text CHECK (channel IN (
        'web_form', 'agent', 'email', 'voice', 'paper', 'import', 'api')),
    ADD COLUMN evidence_sha256 text CHECK (evidence_sha256 ~ '^[0-9a-f]{64}$');
ALTER TABLE audit_log DROP CONSTRAINT audit_log_source_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_source_check CHECK (source IN (
    'telnyx', 'keyword', 'intent', 'operator', 'reconcile', 'api'));
