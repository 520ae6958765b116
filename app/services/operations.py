"""The operators' side: retention, what the sweepers applied, and the counters and backlog
gauges that /metrics serves from PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import psycopg

from app.store import counters, inbox, outbox, receipts
from app.store.inbox import DroppedDays, PruneResult


def ensure_partitions(conn: psycopg.Connection) -> list[str]:
    """The partitions of today and the next two days (UTC), of the inbox and of delivery
    receipts, so that the receiver finds them ready; returns those created."""
    return inbox.PARTITIONS.ensure(conn) + receipts.PARTITIONS.ensure(conn)


@dataclass(frozen=True)
class Retention:
    created: list[str]  # partitions made ahead
    removed: PruneResult  # inbox events deleted in batches (not in a day's partition)
    inbox_days: DroppedDays  # days of the inbox past WEBHOOK_RETENTION_DAYS, dropped whole
    receipt_days: list[str]  # days of receipts past RECEIPT_RETENTION_HOURS, dropped whole


def apply_retention(
    conn: psycopg.Connection, retention_days: int, receipt_hours: int, dry_run: bool = False
) -> Retention:
    """Retention, what beat runs hourly: processed and ignored events go after
    ``retention_days``, plain delivery receipts after ``receipt_hours``; whole days by
    partition drops (never a scan), the rest in batches. Pending, failed and invalid events
    stay for replay; audit rows are never pruned. ``conn`` must be in autocommit mode."""
    if dry_run:
        return Retention(
            [],
            inbox.prune(conn, retention_days, dry_run=True),
            inbox.drop_expired_days(conn, retention_days, dry_run=True),
            receipts.PARTITIONS.expired(conn, timedelta(hours=receipt_hours)),
        )
    created = ensure_partitions(conn)
    removed = inbox.prune(conn, retention_days)  # first: it empties the legacy partition
    return Retention(
        created,
        removed,
        inbox.drop_expired_days(conn, retention_days),
        receipts.drop_expired(conn, receipt_hours),
    )


def count_swept(conn: psycopg.Connection, claimed: int) -> None:
    """Count events that reached the database through a sweeper, not the hand-off."""
    counters.add(conn, {(counters.SWEEPER_METRIC, ""): claimed})


def metrics_exposition(conn: psycopg.Connection) -> str:
    """Prometheus text of the workers' exact counters, the inbox's backlog and the outbox's."""
    return (
        counters.exposition(conn) + inbox.backlog_exposition(conn) + outbox.backlog_exposition(conn)
    )
