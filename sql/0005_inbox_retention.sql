-- Retention removes whole rows: processed and ignored events (delivery receipts are most of
-- the inbox) go after WEBHOOK_RETENTION_DAYS, so the inbox is as big as its window, not as
-- old as the service. Pending, failed and invalid events stay for replay. Bodies are no longer
-- pruned separately: rows and bodies now leave together.
DROP INDEX webhook_events_prunable;
ALTER TABLE webhook_events DROP COLUMN body_pruned_at;
CREATE INDEX webhook_events_retention ON webhook_events (received_at)
    WHERE status IN ('processed', 'ignored');
