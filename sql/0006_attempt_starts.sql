-- An attempt is counted when it starts, in a transaction of its own, before the event is
-- applied. An attempt that ends with its process (a hard time limit, out of memory, a crash
-- in C) rolls back everything it did but this count, so such an event cannot loop for ever:
-- starts - attempts is how many times its process died on it.
ALTER TABLE webhook_events ADD COLUMN starts integer NOT NULL DEFAULT 0;
