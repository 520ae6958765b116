-- Counters the worker keeps in the same transaction as the facts they count, so /metrics is
-- exact whatever the number of web and worker processes, and survives restarts.
CREATE TABLE metric_counters (
    metric text NOT NULL,
    labels text NOT NULL DEFAULT '',   -- the Prometheus label set, e.g. le="0.5"
    value  double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (metric, labels)
);

-- Retention: raw bodies of processed events are dropped after WEBHOOK_RETENTION_DAYS; the row
-- (and its event id, which keeps redeliveries idempotent) stays.
ALTER TABLE webhook_events ADD COLUMN body_pruned_at timestamptz;
CREATE INDEX webhook_events_prunable ON webhook_events (processed_at)
    WHERE status = 'processed' AND body_pruned_at IS NULL;
