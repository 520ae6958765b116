-- First of three steps that turn the inbox into daily partitions (0016) without stopping the
-- receiver. The existing table becomes one partition, whose range is that of a bigserial
-- (1 to 2^40); this constraint proves it, so attaching it needs no scan under a lock. Added
-- NOT VALID here (instant) and validated in 0015, where the scan holds no lock that blocks
-- the receiver or the workers. An operator may have added and validated it by hand already
-- (the README's upgrade notes for a very large inbox).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'webhook_events_pk_bound'
                   AND conrelid = 'webhook_events'::regclass) THEN
        ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_pk_bound
            CHECK (pk >= 1 AND pk < 1099511627776) NOT VALID;
    END IF;
END $$;
