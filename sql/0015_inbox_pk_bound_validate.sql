-- Reads the whole inbox once, under a lock that lets inserts and updates go on. On a very
-- large inbox, run this statement by hand beforehand (it then finds nothing left to do here).
ALTER TABLE webhook_events VALIDATE CONSTRAINT webhook_events_pk_bound;
