"""The operators' side: retention, what the sweepers applied, and the counters and backlog
gauges that /metrics serves from PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from app.store import counters, inbox, outbox, receipts
from app.store.inbox import PruneResult


def prune_inbox(
    conn: psycopg.Connection, retention_days: int, dry_run: bool = False
) -> PruneResult:
    """Retention: processed and ignored events older than the window go, rows and all.
    Audit rows are never pruned."""
    return inbox.prune(conn, retention_days, dry_run=dry_run)


@dataclass(frozen=True)
class ReceiptsKept:
    created: list[str]  # partitions made ahead
    dropped: list[str]  # partitions past RECEIPT_RETENTION_HOURS, dropped whole


def maintain_receipts(
    conn: psycopg.Connection, retention_hours: int, dry_run: bool = False
) -> ReceiptsKept:
    """Delivery receipts: partitions for today and the next two days, and none older than
    the retention (a partition drop, never a scan). ``conn`` must be in autocommit mode."""
    if dry_run:
        return ReceiptsKept([], receipts.expired(conn, retention_hours))
    return ReceiptsKept(
        receipts.ensure_partitions(conn), receipts.drop_expired(conn, retention_hours)
    )


def count_swept(conn: psycopg.Connection, claimed: int) -> None:
    """Count events that reached the database through a sweeper, not the hand-off."""
    counters.add(conn, {(counters.SWEEPER_METRIC, ""): claimed})


def metrics_exposition(conn: psycopg.Connection) -> str:
    """Prometheus text of the workers' exact counters, the inbox's backlog and the outbox's."""
    return (
        counters.exposition(conn) + inbox.backlog_exposition(conn) + outbox.backlog_exposition(conn)
    )
