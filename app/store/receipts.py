"""The delivery_receipts table: receipts without an error, kept compactly in daily
partitions that are dropped whole once RECEIPT_RETENTION_HOURS have passed (migration 0013).

An event id is unique within its day's partition (a unique index per partition); across
days, a receipt is recorded only if no partition holds its id yet. Two copies of one receipt
racing across midnight could both be kept, which costs a row and nothing else: a receipt
without an error changes no state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import psycopg

from app.store import inbox
from app.store.partitions import DailyPartitions, midnight

PARTITIONS = DailyPartitions(
    "delivery_receipts",
    lock_key=0x6F7074_726370,  # "opt" "rcp"
    bounds=lambda day: (midnight(day), midnight(day + timedelta(days=1))),
)


@dataclass(frozen=True)
class Receipt:
    event_id: str
    event_type: str
    signed_at: int | None


def record(conn: psycopg.Connection, receipts: Sequence[Receipt]) -> list[bool]:
    """Keep the receipts not already kept, in one statement; for each, whether it was new
    (an id twice in one batch is new once).
    Raises psycopg.errors.UniqueViolation when another session kept one of them in the
    meantime (the caller tries again), and CheckViolation when today's partition is missing
    (the caller creates it: PARTITIONS.ensure)."""
    rows = conn.execute(
        "INSERT INTO delivery_receipts (event_id, event_type, signed_at)"
        " SELECT DISTINCT ON (u.event_id) u.event_id, u.event_type, u.signed_at"
        " FROM unnest(%b::text[], %b::text[], %b::int8[]) AS u(event_id, event_type, signed_at)"
        " WHERE NOT EXISTS (SELECT 1 FROM delivery_receipts r WHERE r.event_id = u.event_id)"
        f"   AND NOT EXISTS ({inbox.KEPT_RECENTLY})"  # kept before 0013, or with an error
        " RETURNING event_id",
        (
            [r.event_id for r in receipts],
            [r.event_type for r in receipts],
            [r.signed_at for r in receipts],
            *inbox.recent_days(),
        ),
    ).fetchall()
    return inbox.new_in_order([r.event_id for r in receipts], {event_id for (event_id,) in rows})


def drop_expired(conn: psycopg.Connection, retention_hours: int) -> list[str]:
    """Drop the days past ``retention_hours`` whole. ``conn`` must be in autocommit mode.
    Returns them."""
    dropped = PARTITIONS.expired(conn, timedelta(hours=retention_hours))
    for name in dropped:
        PARTITIONS.detach_and_drop(conn, name)
    return dropped
