-- Evidence of consent that did not come by SMS (spec §10): stored once per event, as the
-- exact bytes whose SHA-256 the event's audit row holds (and the chain covers), so
-- `audit verify` proves it unchanged. Append-only, like the audit log.
CREATE TABLE consent_evidence (
    event_id   text PRIMARY KEY,
    body       bytea NOT NULL,            -- canonical JSON of the evidence object
    sha256     text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    stored_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE FUNCTION consent_evidence_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'consent_evidence is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER consent_evidence_append_only BEFORE UPDATE OR DELETE ON consent_evidence
    FOR EACH ROW EXECUTE FUNCTION consent_evidence_refuse_change();
CREATE TRIGGER consent_evidence_no_truncate BEFORE TRUNCATE ON consent_evidence
    FOR EACH STATEMENT EXECUTE FUNCTION consent_evidence_refuse_change();
