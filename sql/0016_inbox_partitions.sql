-- The inbox in daily partitions, so that retention drops a day whole instead of deleting its
-- rows (issue 19).
--
-- Partitioned by pk, and a pk carries its UTC day: (days since 1970-01-01) << 32, plus the
-- sequence's next value modulo 2^32. Every pk-keyed claim and update then touches one
-- partition. Partitions are made ahead by the code (db upgrade, beat, and the receiver if
-- beat is late), one a day, named webhook_events_pYYYYMMDD, each with a unique index on
-- event_id.
--   webhook_events_kept    pk < 1: pending, failed and invalid events of a day past the
--                          retention, moved here (pk -> -pk) before their day is dropped.
--   webhook_events_legacy  1 <= pk < 2^40: the inbox as it was before this migration,
--                          attached whole (0014 and 0015 proved its range, so no scan here).
--                          Retention deletes its rows in batches, as before; once none of its
--                          processed or ignored rows is left it goes like a day. An empty
--                          inbox (a new install) has no legacy partition.
-- Days start at 2^40 or above from 1970-09-14 on, so the ranges never meet.
--
-- The code of earlier releases inserts with ON CONFLICT (event_id), which no longer has an
-- index to use: restart the web processes right after this migration (see the README).
ALTER TABLE webhook_events RENAME TO webhook_events_legacy;
ALTER TABLE webhook_events_legacy RENAME CONSTRAINT webhook_events_pkey TO webhook_events_legacy_pkey;
ALTER TABLE webhook_events_legacy
    RENAME CONSTRAINT webhook_events_event_id_key TO webhook_events_legacy_event_id_key;
ALTER INDEX webhook_events_pending RENAME TO webhook_events_legacy_pending;
ALTER INDEX webhook_events_problems RENAME TO webhook_events_legacy_problems;
ALTER INDEX webhook_events_retention RENAME TO webhook_events_legacy_retention;
ALTER TABLE webhook_events_legacy ALTER COLUMN pk DROP DEFAULT;

CREATE FUNCTION webhook_events_next_pk(received timestamptz) RETURNS bigint
    LANGUAGE sql VOLATILE
    RETURN (floor(extract(epoch FROM received) / 86400)::bigint << 32)
           + nextval('webhook_events_pk_seq') % 4294967296;

CREATE TABLE webhook_events (
    pk               bigint NOT NULL DEFAULT webhook_events_next_pk(clock_timestamp()),
    event_id         text,                 -- data.id; NULL only when a verified body had none
    event_type       text,
    status           text NOT NULL CONSTRAINT webhook_events_status_check
                     CHECK (status IN ('pending', 'processed', 'failed', 'invalid', 'ignored')),
    raw_body         bytea NOT NULL,
    signed_at        bigint,
    received_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    processed_at     timestamptz,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_error       text,
    outcome          text,
    starts           integer NOT NULL DEFAULT 0,
    CONSTRAINT webhook_events_pkey PRIMARY KEY (pk)
) PARTITION BY RANGE (pk);
ALTER TABLE webhook_events ALTER COLUMN raw_body SET STORAGE EXTERNAL;  -- as 0004
ALTER SEQUENCE webhook_events_pk_seq OWNED BY webhook_events.pk;
-- The same partial indexes as before; the legacy table's own are attached to them.
CREATE INDEX webhook_events_pending ON webhook_events (next_attempt_at, pk)
    WHERE status = 'pending';
CREATE INDEX webhook_events_problems ON webhook_events (status, pk)
    WHERE status IN ('failed', 'invalid');
CREATE INDEX webhook_events_retention ON webhook_events (received_at)
    WHERE status IN ('processed', 'ignored');

CREATE TABLE webhook_events_kept PARTITION OF webhook_events
    FOR VALUES FROM (MINVALUE) TO (1) WITH (toast_tuple_target = 128);
-- Not unique: one id may have been kept on two days more than the duplicate window apart.
CREATE INDEX webhook_events_kept_event_id ON webhook_events_kept (event_id);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhook_events_legacy) THEN
        ALTER TABLE webhook_events
            ATTACH PARTITION webhook_events_legacy FOR VALUES FROM (1) TO (1099511627776);
    ELSE
        DROP TABLE webhook_events_legacy;
    END IF;
END $$;
