-- Consent scopes (CONSENT_SCOPES, spec §9) are a read-time policy: can-send compares the
-- latest opt-out of a number on every profile of a scope with its latest opt-in on the
-- profile asked about. The consent register keeps only the last STOP/START, so each row
-- also keeps the time of its latest opt-out and of its latest opt-in, whatever came after.
ALTER TABLE subscribers
    ADD COLUMN last_opt_out_at timestamptz,
    ADD COLUMN last_opt_in_at timestamptz;

-- The audit log holds every consent event: the rows so far get their times from it.
UPDATE subscribers AS s SET last_opt_out_at = a.at
FROM (SELECT messaging_profile_id, phone_number, max(occurred_at) AS at FROM audit_log
      WHERE action IN ('opt_out', 'review_confirmed') GROUP BY 1, 2) AS a
WHERE s.messaging_profile_id = a.messaging_profile_id AND s.phone_number = a.phone_number;
UPDATE subscribers AS s SET last_opt_in_at = a.at
FROM (SELECT messaging_profile_id, phone_number, max(occurred_at) AS at FROM audit_log
      WHERE action = 'opt_in' GROUP BY 1, 2) AS a
WHERE s.messaging_profile_id = a.messaging_profile_id AND s.phone_number = a.phone_number;

-- A scope of every profile ("*") and the subscriber API without a profile look a number up
-- across profiles.
CREATE INDEX subscribers_by_phone ON subscribers (phone_number);
