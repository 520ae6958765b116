"""Daily partitions (UTC days) of a table partitioned by range, shared by the inbox
(webhook_events, migration 0016) and delivery_receipts (0013): made ahead of time, listed,
and dropped whole once their day is past the retention, so that retention never scans rows.

Each day's partition is named <parent>_pYYYYMMDD and has a unique index on event_id: within
a day, the index refuses a second copy of an event even when two processes race."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

Bound = int | datetime


def today() -> date:
    return datetime.now(UTC).date()


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(frozen=True)
class DailyPartitions:
    parent: str
    lock_key: int  # creating partitions from several processes at once queues on it
    bounds: Callable[[date], tuple[Bound, Bound]]  # a day's FROM and TO values
    storage: str = ""  # storage parameters of each partition, e.g. "toast_tuple_target = 128"

    def name(self, day: date) -> str:
        return f"{self.parent}_p{day:%Y%m%d}"

    def day_of(self, name: str) -> date | None:
        match = re.fullmatch(rf"{re.escape(self.parent)}_p(\d{{8}})", name)
        return datetime.strptime(match.group(1), "%Y%m%d").date() if match else None

    def ensure(
        self, conn: psycopg.Connection, days_ahead: int = 2, days_back: int = 0
    ) -> list[str]:
        """Create the partitions of today (UTC), the next ``days_ahead`` days and the past
        ``days_back`` days that are missing, committed; return the ones created."""
        created = []
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock_key,))
            existing = set(self.days(conn))
            for offset in range(-days_back, days_ahead + 1):
                day = today() + timedelta(days=offset)
                if self.name(day) not in existing:
                    self._create(conn, day)
                    created.append(self.name(day))
        return created

    def _create(self, conn: psycopg.Connection, day: date) -> None:
        table = sql.Identifier(self.name(day))
        start, end = self.bounds(day)
        conn.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({}){}").format(
                table,
                sql.Identifier(self.parent),
                sql.Literal(start),
                sql.Literal(end),
                sql.SQL(f" WITH ({self.storage})" if self.storage else ""),
            )
        )
        conn.execute(
            sql.SQL("CREATE UNIQUE INDEX {} ON {} (event_id)").format(
                sql.Identifier(f"{self.name(day)}_event_id"), table
            )
        )

    def days(self, conn: psycopg.Connection) -> list[str]:
        """The daily partitions there are, oldest first (other partitions left out)."""
        return [name for name, _ in self._days(conn)]

    def _days(self, conn: psycopg.Connection) -> list[tuple[str, date]]:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass ORDER BY c.relname",
            (self.parent,),
        ).fetchall()
        return [(name, day) for (name,) in rows if (day := self.day_of(name))]

    def expired(self, conn: psycopg.Connection, retention: timedelta) -> list[str]:
        """The daily partitions whose whole day ended more than ``retention`` ago."""
        cutoff = datetime.now(UTC) - retention
        return [
            name for name, day in self._days(conn) if midnight(day + timedelta(days=1)) <= cutoff
        ]

    def detach_and_drop(self, conn: psycopg.Connection, name: str) -> None:
        """A detach that waits for no reader or writer (CONCURRENTLY), then a drop. ``conn``
        must be in autocommit mode."""
        table = sql.Identifier(name)
        conn.execute(
            sql.SQL("ALTER TABLE {} DETACH PARTITION {} CONCURRENTLY").format(
                sql.Identifier(self.parent), table
            )
        )
        conn.execute(sql.SQL("DROP TABLE {}").format(table))
