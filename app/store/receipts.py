"""The delivery_receipts table: receipts without an error, kept compactly in daily
partitions that are dropped whole once RECEIPT_RETENTION_HOURS have passed (migration 0013).

An event id is unique within its day's partition (a unique index per partition); across
days, a receipt is recorded only if no partition holds its id yet. Two copies of one receipt
racing across midnight could both be kept, which costs a row and nothing else: a receipt
without an error changes no state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

from app.store import inbox

# Creating partitions from several processes at once queues on this (any fixed number).
PARTITIONS_LOCK_KEY = 0x6F7074_726370  # "opt" "rcp"
_PREFIX = "delivery_receipts_p"


@dataclass(frozen=True)
class Receipt:
    event_id: str
    event_type: str
    signed_at: int | None


def partition_name(day: date) -> str:
    return f"{_PREFIX}{day:%Y%m%d}"


def record(conn: psycopg.Connection, receipts: Sequence[Receipt]) -> list[bool]:
    """Keep the receipts not already kept, in one statement; for each, whether it was new
    (an id twice in one batch is new once).
    Raises psycopg.errors.UniqueViolation when another session kept one of them in the
    meantime (the caller tries again), and CheckViolation when today's partition is missing
    (the caller creates it: ensure_partitions)."""
    rows = conn.execute(
        "INSERT INTO delivery_receipts (event_id, event_type, signed_at)"
        " SELECT DISTINCT ON (u.event_id) u.event_id, u.event_type, u.signed_at"
        " FROM unnest(%b::text[], %b::text[], %b::int8[]) AS u(event_id, event_type, signed_at)"
        " WHERE NOT EXISTS (SELECT 1 FROM delivery_receipts r WHERE r.event_id = u.event_id)"
        "   AND NOT EXISTS (SELECT 1 FROM webhook_events e WHERE e.event_id = u.event_id)"
        " RETURNING event_id",
        (
            [r.event_id for r in receipts],
            [r.event_type for r in receipts],
            [r.signed_at for r in receipts],
        ),
    ).fetchall()
    return inbox.new_in_order([r.event_id for r in receipts], {event_id for (event_id,) in rows})


def ensure_partitions(
    conn: psycopg.Connection, days_ahead: int = 2, days_back: int = 0
) -> list[str]:
    """Create the partitions of today (UTC), the next ``days_ahead`` days and the past
    ``days_back`` days that are missing, committed; return the ones created."""
    today = datetime.now(UTC).date()
    created = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITIONS_LOCK_KEY,))
        existing = set(partitions(conn))
        for offset in range(-days_back, days_ahead + 1):
            day = today + timedelta(days=offset)
            name = partition_name(day)
            if name in existing:
                continue
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} PARTITION OF delivery_receipts FOR VALUES FROM ({}) TO ({})"
                ).format(
                    sql.Identifier(name),
                    sql.Literal(start),
                    sql.Literal(start + timedelta(days=1)),
                )
            )
            conn.execute(
                sql.SQL("CREATE UNIQUE INDEX {} ON {} (event_id)").format(
                    sql.Identifier(f"{name}_event_id"), sql.Identifier(name)
                )
            )
            created.append(name)
    return created


def partitions(conn: psycopg.Connection) -> list[str]:
    """The partitions there are, oldest first."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'delivery_receipts'::regclass ORDER BY c.relname"
    ).fetchall()
    return [name for (name,) in rows]


def expired(conn: psycopg.Connection, retention_hours: int) -> list[str]:
    """The partitions whose whole day ended more than ``retention_hours`` ago."""
    cutoff = datetime.now(UTC) - timedelta(hours=retention_hours)
    return [
        name
        for name in partitions(conn)
        if datetime.strptime(name.removeprefix(_PREFIX), "%Y%m%d").replace(tzinfo=UTC)
        + timedelta(days=1)
        <= cutoff
    ]


def drop_expired(conn: psycopg.Connection, retention_hours: int) -> list[str]:
    """Drop the expired partitions: a detach that waits for no reader or writer
    (CONCURRENTLY), then a drop. ``conn`` must be in autocommit mode. Returns them."""
    dropped = expired(conn, retention_hours)
    for name in dropped:
        table = sql.Identifier(name)
        conn.execute(
            sql.SQL("ALTER TABLE delivery_receipts DETACH PARTITION {} CONCURRENTLY").format(table)
        )
        conn.execute(sql.SQL("DROP TABLE {}").format(table))
    return dropped
