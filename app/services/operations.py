"""The operators' side: retention, what the sweepers applied, and the counters and backlog
gauges that /metrics serves from PostgreSQL."""

from __future__ import annotations

import psycopg

from app.store import counters, inbox, outbox
from app.store.inbox import PruneResult


def prune_inbox(
    conn: psycopg.Connection, retention_days: int, dry_run: bool = False
) -> PruneResult:
    """Retention: processed and ignored events older than the window go, rows and all.
    Audit rows are never pruned."""
    return inbox.prune(conn, retention_days, dry_run=dry_run)


def count_swept(conn: psycopg.Connection, claimed: int) -> None:
    """Count events that reached the database through a sweeper, not the hand-off."""
    counters.add(conn, {(counters.SWEEPER_METRIC, ""): claimed})


def metrics_exposition(conn: psycopg.Connection) -> str:
    """Prometheus text of the workers' exact counters, the inbox's backlog and the outbox's."""
    return (
        counters.exposition(conn) + inbox.backlog_exposition(conn) + outbox.backlog_exposition(conn)
    )
