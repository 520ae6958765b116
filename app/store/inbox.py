"""The webhook inbox table: every verified delivery, kept raw, with its processing state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

import psycopg
from psycopg.rows import dict_row

from app.store import partitions
from app.store.partitions import DailyPartitions


class EventStatus(StrEnum):
    """Where an inbox event stands (the table's CHECK holds the same values)."""

    PENDING = "pending"  # waiting for a worker
    PROCESSED = "processed"  # applied: state, audit rows and outcome committed together
    FAILED = "failed"  # its attempts are used up; kept with its error, replayable
    INVALID = "invalid"  # verified but unreadable; kept raw, replayable after a fix
    IGNORED = "ignored"  # another event type (message.sent, message.finalized)


PENDING, PROCESSED, FAILED, INVALID, IGNORED = EventStatus
STATUSES = tuple(status.value for status in EventStatus)
REPLAYABLE = (FAILED, INVALID)
# Backoff between attempts of an event whose processing raised: 2, 4, 8… seconds, at most 5 min.
MAX_BACKOFF_SECONDS = 300


@dataclass(frozen=True)
class Delivery:
    """A verified webhook as the inbox keeps it."""

    event_id: str | None
    event_type: str | None
    status: str
    raw_body: bytes
    signed_at: int | None
    error: str | None = None


# The pks of a UTC day (migration 0016): its days since 1970-01-01, shifted left 32 bits.
DAY_SHIFT = 32
# Below this, pks are the legacy partition's (a bigserial, before 0016) and the kept one's.
LEGACY_END = 2**40
PARTITIONS = DailyPartitions(
    "webhook_events",
    lock_key=0x6F7074_696E62,  # "opt" "inb"
    bounds=lambda day: (day_pk(day), day_pk(day + timedelta(days=1))),
    storage="toast_tuple_target = 128",  # as migration 0004
)
LEGACY = "webhook_events_legacy"
# The partitions a hot path looks in: today's and the RECENT_DAYS before it, and the kept and
# legacy ones. Every partition a statement reaches costs it a lock and an index probe, and
# concurrent sessions then queue on PostgreSQL's lock manager; ninety days would be ninety.
#  - A redelivery found there is answered `duplicate`. Telnyx retries a delivery up to 3
#    times per URL with backoff, then tries the failover URL: minutes to hours, well inside
#    at least a whole day.
#  - Workers claim pending events there (retries back off for minutes). Events left pending
#    in older days (an outage of more than a day, the replay of an old event) are the
#    sweepers' (claim_due's older_days).
RECENT_DAYS = 1
IN_RECENT_DAYS = "(e.pk >= %s AND e.pk < %s OR e.pk < %s)"  # recent_days()
KEPT_RECENTLY = f"SELECT 1 FROM webhook_events e WHERE e.event_id = u.event_id AND {IN_RECENT_DAYS}"


def day_pk(day: date) -> int:
    """The first pk of a UTC day's partition."""
    return (day - date(1970, 1, 1)).days << DAY_SHIFT


def recent_days() -> tuple[int, int, int]:
    """IN_RECENT_DAYS's parameters: the first pk of the recent days, the first pk after
    today, and LEGACY_END."""
    today = partitions.today()
    return (
        day_pk(today - timedelta(days=RECENT_DAYS)),
        day_pk(today + timedelta(days=1)),
        LEGACY_END,
    )


def record_events(conn: psycopg.Connection, deliveries: Sequence[Delivery]) -> list[bool]:
    """Insert deliveries in one statement (one commit, on an autocommit connection), each
    unless its event id is already kept (in the partitions of RECENT_DAYS); for each, True when it
    was new. An id repeated within the batch is new once, the first time.
    Raises psycopg.errors.UniqueViolation when another session kept one of them in the
    meantime (try again: it is now a duplicate), and CheckViolation when today's partition
    is missing (PARTITIONS.ensure, then try again)."""
    firsts = _first_copies(deliveries)
    inserted = {
        event_id
        for (event_id,) in conn.execute(
            "INSERT INTO webhook_events"
            " (event_id, event_type, status, raw_body, signed_at, last_error)"
            " SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::bytea[],"
            "   %b::int8[], %b::text[])"  # binary: the bodies go without hex escaping
            "   AS u(event_id, event_type, status, raw_body, signed_at, last_error)"
            f" WHERE u.event_id IS NULL OR NOT EXISTS ({KEPT_RECENTLY})"
            " RETURNING event_id",
            (
                [d.event_id for d in firsts],
                [d.event_type for d in firsts],
                [d.status for d in firsts],
                [d.raw_body for d in firsts],
                [d.signed_at for d in firsts],
                [d.error for d in firsts],
                *recent_days(),
            ),
        ).fetchall()
    }
    return new_in_order([d.event_id for d in deliveries], inserted)


def _first_copies(deliveries: Sequence[Delivery]) -> list[Delivery]:
    """The deliveries without a later copy of an earlier one's id (no id: never a copy)."""
    seen: set[str] = set()
    firsts = []
    for delivery in deliveries:
        if delivery.event_id is None or delivery.event_id not in seen:
            firsts.append(delivery)
        if delivery.event_id is not None:
            seen.add(delivery.event_id)
    return firsts


def new_in_order(event_ids: Sequence[str | None], inserted: set[str]) -> list[bool]:
    """For each id in the order given, whether it was new: inserted, and not already
    answered earlier in the batch. No id, no conflict: always a row of its own."""
    answered: set[str] = set()
    new = []
    for event_id in event_ids:
        if event_id is None:
            new.append(True)
        else:
            new.append(event_id in inserted and event_id not in answered)
            answered.add(event_id)
    return new


def record_event(
    conn: psycopg.Connection,
    *,
    event_id: str | None,
    event_type: str | None,
    status: str,
    raw_body: bytes,
    signed_at: int | None,
    error: str | None = None,
) -> bool:
    """Insert one delivery unless its event id is already kept; True when it was new."""
    delivery = Delivery(event_id, event_type, status, raw_body, signed_at, error)
    return record_events(conn, [delivery])[0]


@dataclass(frozen=True)
class ClaimedEvent:
    pk: int
    event_id: str | None
    raw_body: bytes
    received_at: datetime
    attempts: int


@dataclass(frozen=True)
class DueEvent:
    pk: int
    attempts: int  # attempts that ended with an error recorded against the event
    starts: int  # attempts begun

    @property
    def crashes(self) -> int:
        """Attempts whose process died before it could record anything."""
        return self.starts - self.attempts


# After an attempt is counted the event is not due for this long, so no other worker counts
# it too in the moment before this one locks it again. It is also how long the events of a
# worker that died wait before another worker takes them.
ATTEMPT_LEASE_SECONDS = 5


_CLAIM_DUE = (
    "SELECT pk, attempts, starts FROM webhook_events e"
    " WHERE status = 'pending' AND next_attempt_at <= clock_timestamp() AND {days}"
    " ORDER BY next_attempt_at, pk LIMIT %s FOR UPDATE SKIP LOCKED"
)


def claim_due(conn: psycopg.Connection, limit: int, *, older_days: bool = False) -> list[DueEvent]:
    """Lock up to ``limit`` due pending events for this transaction; others skip them. From
    the partitions of RECENT_DAYS, then, with ``older_days`` and if those had fewer, from
    every other day's."""
    recent = recent_days()
    rows = conn.execute(_CLAIM_DUE.format(days=IN_RECENT_DAYS), (*recent, limit)).fetchall()
    if older_days and len(rows) < limit:
        rows += conn.execute(
            _CLAIM_DUE.format(days=f"NOT {IN_RECENT_DAYS}"), (*recent, limit - len(rows))
        ).fetchall()
    return [DueEvent(pk, attempts, starts) for pk, attempts, starts in rows]


def count_attempts(conn: psycopg.Connection, pks: Sequence[int]) -> list[int]:
    """Count an attempt on each due pending event (skipping those another transaction holds)
    and lease it for ATTEMPT_LEASE_SECONDS. Commit before applying: the count then survives
    whatever ends the attempt. Returns the pks counted."""
    if not pks:
        return []
    rows = conn.execute(
        "UPDATE webhook_events SET starts = starts + 1,"
        "  next_attempt_at = clock_timestamp() + make_interval(secs => %(lease)s)"
        " WHERE pk = ANY(%(pks)s)"  # a constant array: only the partitions of these pks
        "   AND pk = ANY(ARRAY(SELECT pk FROM webhook_events WHERE pk = ANY(%(pks)s)"
        "   AND status = 'pending' AND next_attempt_at <= clock_timestamp()"
        "   FOR UPDATE SKIP LOCKED)) RETURNING pk",
        {"lease": ATTEMPT_LEASE_SECONDS, "pks": list(pks)},
    ).fetchall()
    return sorted(row[0] for row in rows)


def set_aside_crashed(conn: psycopg.Connection, pks: Sequence[int]) -> int:
    """Fail events whose attempts are used up, the last ones by processes that died."""
    cursor = conn.execute(
        "UPDATE webhook_events SET status = 'failed', last_error = format("
        "  'the worker process ended during %%s of its %%s attempts (a time limit, out of"
        " memory, or a crash); set aside so that other events go on: replay it once the cause"
        " is fixed', starts - attempts, starts)"
        " WHERE pk = ANY(%s) AND status = 'pending'",
        (list(pks),),
    )
    return cursor.rowcount


def claim_events(conn: psycopg.Connection, pks: Sequence[int]) -> list[ClaimedEvent]:
    """Lock pending events by pk, with their bodies (those already done are left out).

    Waits for a lock another transaction holds instead of skipping: the events were leased
    to this worker by count_attempts, and another worker's claim_due may still hold a lock
    on one of them for a moment after finding it no longer due (a row locked FOR UPDATE
    stays locked even when the recheck after a concurrent update drops it). Skipping would
    leave such an event pending until its lease ran out."""
    rows = conn.execute(
        "SELECT pk, event_id, raw_body, received_at, attempts FROM webhook_events"
        " WHERE pk = ANY(%s) AND status = 'pending' ORDER BY pk FOR UPDATE",
        (list(pks),),
    ).fetchall()
    return [ClaimedEvent(pk, eid, bytes(body), at, tries) for pk, eid, body, at, tries in rows]


def claim_pending(conn: psycopg.Connection, limit: int) -> list[ClaimedEvent]:
    """Lock up to ``limit`` due pending events with their bodies, counting no attempt: for
    applying them in this same transaction (tests, tools). The worker counts attempts."""
    return claim_events(conn, [event.pk for event in claim_due(conn, limit, older_days=True)])


def mark_done(conn: psycopg.Connection, outcomes: Sequence[tuple[int, str, str]]) -> None:
    """Set each (pk, status, outcome-or-error) in one statement."""
    if not outcomes:
        return
    pks, statuses, notes = zip(*outcomes, strict=True)
    conn.execute(
        "UPDATE webhook_events AS e SET status = u.status, processed_at = clock_timestamp(),"
        "  outcome = CASE WHEN u.status = 'processed' THEN u.note ELSE e.outcome END,"
        "  last_error = CASE WHEN u.status = 'invalid' THEN u.note ELSE e.last_error END"
        " FROM unnest(%b::bigint[], %b::text[], %b::text[]) AS u(pk, status, note)"
        " WHERE e.pk = u.pk AND e.pk = ANY(%b)",  # the array: only the partitions of these pks
        (list(pks), list(statuses), list(notes), list(pks)),
    )


def record_failure(conn: psycopg.Connection, pk: int, error: str, max_attempts: int) -> str:
    """Count a failed attempt; after ``max_attempts`` the event is ``failed``. Returns status."""
    row = conn.execute(
        "UPDATE webhook_events SET attempts = attempts + 1, last_error = %s,"
        "  status = CASE WHEN greatest(attempts + 1, starts) >= %s THEN 'failed' ELSE status END,"
        "  next_attempt_at = clock_timestamp()"
        "    + make_interval(secs => least(power(2, attempts + 1), %s))"
        " WHERE pk = %s AND status = 'pending' RETURNING status",
        (error[:4000], max_attempts, MAX_BACKOFF_SECONDS, pk),
    ).fetchone()
    return row[0] if row else "gone"


def list_events(
    conn: psycopg.Connection, status: str | None = None, limit: int = 100
) -> list[dict[str, object]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        cursor.execute(
            "SELECT pk, event_id, event_type, status, received_at, processed_at, attempts,"
            "  outcome, last_error FROM webhook_events"
            " WHERE %(status)s::text IS NULL OR status = %(status)s"
            " ORDER BY pk DESC LIMIT %(limit)s",
            {"status": status, "limit": limit},
        )
        return cursor.fetchall()


def count_by_status(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT status, count(*) FROM webhook_events GROUP BY status").fetchall()
    return {status: count for status, count in rows}


def count_problems(conn: psycopg.Connection) -> dict[str, int]:
    """Failed and invalid events, which wait for a person."""
    rows = conn.execute(
        "SELECT status, count(*) FROM webhook_events WHERE status IN ('failed', 'invalid')"
        " GROUP BY status"
    ).fetchall()
    return {status: count for status, count in rows}


class ReplayRefused(Exception):
    pass


def replay_event(conn: psycopg.Connection, event_id: str) -> None:
    """Put one failed or invalid event back in the queue with a fresh attempt count."""
    row = conn.execute(
        "SELECT status FROM webhook_events WHERE event_id = %s", (event_id,)
    ).fetchone()
    if row is None:
        raise ReplayRefused(f"no event with id {event_id}")
    if row[0] not in REPLAYABLE:
        raise ReplayRefused(f"event {event_id} is {row[0]}; only failed or invalid events replay")
    conn.execute(
        "UPDATE webhook_events SET status = 'pending', attempts = 0, starts = 0,"
        " next_attempt_at = clock_timestamp() WHERE event_id = %s",
        (event_id,),
    )


def replay_failed(conn: psycopg.Connection) -> int:
    cursor = conn.execute(
        "UPDATE webhook_events SET status = 'pending', attempts = 0, starts = 0,"
        " next_attempt_at = clock_timestamp() WHERE status = 'failed'"
    )
    return cursor.rowcount


# What retention removes once it is older than the window; the rest waits for replay.
RETIRED = (PROCESSED, IGNORED)


@dataclass(frozen=True)
class PruneResult:
    cutoff: datetime
    removed: dict[str, int]  # by status


def retention_cutoff(older_than_days: int) -> datetime:
    """The midnight (UTC) before which retention removes events: whole days, so that a day's
    partition goes in one drop rather than row by row as its hours pass."""
    return partitions.midnight((datetime.now(UTC) - timedelta(days=older_than_days)).date())


def prune(
    conn: psycopg.Connection, older_than_days: int, *, dry_run: bool = False, batch: int = 10_000
) -> PruneResult:
    """Remove processed and ignored events received before retention_cutoff() that are not
    in a day's partition past it (drop_expired_days drops those whole): the legacy
    partition's, replayed ones in the kept partition, and any received_at set by hand.

    In batches, each committed, so the receiver and the workers never wait long on it.
    Pending, failed and invalid events stay whatever their age: they are for replay.
    """
    cutoff = retention_cutoff(older_than_days)
    # Retired before the cutoff, and outside the days that drop_expired_days drops whole.
    retired = "status = ANY(%s) AND received_at < %s AND (pk < %s OR pk >= %s)"
    params = (list(RETIRED), cutoff, LEGACY_END, day_pk(cutoff.date()))
    removed: dict[str, int] = dict.fromkeys(RETIRED, 0)
    if dry_run:
        counts = conn.execute(
            f"SELECT status, count(*) FROM webhook_events WHERE {retired} GROUP BY status",
            params,
        ).fetchall()
        conn.rollback()
        return PruneResult(cutoff, removed | dict(counts))
    while True:
        with conn.transaction():
            pks = conn.execute(
                f"SELECT pk FROM webhook_events WHERE {retired} LIMIT %s FOR UPDATE SKIP LOCKED",
                (*params, batch),
            ).fetchall()
            # The pks as a value, not a subquery: the delete then opens only their partitions.
            counts = conn.execute(
                "WITH gone AS (DELETE FROM webhook_events WHERE pk = ANY(%s) RETURNING status)"
                " SELECT status, count(*) FROM gone GROUP BY status",
                ([pk for (pk,) in pks],),
            ).fetchall()
        for status, count in counts:
            removed[status] += count
        if sum(count for _, count in counts) < batch:
            return PruneResult(cutoff, removed)


# Events that wait for a worker or a person, as their partial indexes find them.
_WAITING = ("status = 'pending'", "status IN ('failed', 'invalid')")


@dataclass(frozen=True)
class DroppedDays:
    partitions: list[str]  # dropped whole (or that would be, on a dry run)
    kept: int  # their pending, failed and invalid events, moved to webhook_events_kept


def drop_expired_days(
    conn: psycopg.Connection, older_than_days: int, *, dry_run: bool = False
) -> DroppedDays:
    """Drop the days whose whole day is before retention_cutoff(), and the legacy partition
    once prune has removed the last of its processed and ignored events. Their pending,
    failed and invalid events move to the kept partition first (pk -> -pk), to wait for
    replay. ``conn`` must be in autocommit mode (the detach is CONCURRENTLY)."""
    expired = PARTITIONS.expired(conn, timedelta(days=older_than_days))
    ranges = {name: _pk_range(name) for name in expired}
    if _legacy_retired(conn):
        ranges[LEGACY] = (1, LEGACY_END)
    if dry_run:
        return DroppedDays(list(ranges), sum(_count_waiting(conn, *r) for r in ranges.values()))
    kept = 0
    for name, (first, end) in ranges.items():
        for waiting in _WAITING:
            kept += conn.execute(
                f"UPDATE webhook_events SET pk = -pk WHERE pk >= %s AND pk < %s AND {waiting}",
                (first, end),
            ).rowcount
        PARTITIONS.detach_and_drop(conn, name)
    return DroppedDays(list(ranges), kept)


def _pk_range(name: str) -> tuple[int, int]:
    day = PARTITIONS.day_of(name)
    assert day is not None
    return day_pk(day), day_pk(day + timedelta(days=1))


def _legacy_retired(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM webhook_events"
        "  WHERE pk >= 1 AND pk < %s AND status IN ('processed', 'ignored'))",
        (LEGACY, LEGACY_END),
    ).fetchone()
    return bool(row and row[0])


def _count_waiting(conn: psycopg.Connection, first: int, end: int) -> int:
    total = 0
    for waiting in _WAITING:
        row = conn.execute(
            f"SELECT count(*) FROM webhook_events WHERE pk >= %s AND pk < %s AND {waiting}",
            (first, end),
        ).fetchone()
        total += row[0] if row else 0
    return total


def backlog_exposition(conn: psycopg.Connection) -> str:
    """Prometheus gauges for what waits in the inbox (cheap: partial indexes)."""
    pending, oldest = conn.execute(
        "SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(received_at)), 0)"
        " FROM webhook_events WHERE status = 'pending'"
    ).fetchone() or (0, 0)
    problems = count_problems(conn)
    lines = [
        "# HELP optout_sync_inbox_events Inbox events waiting or needing attention, by status.",
        "# TYPE optout_sync_inbox_events gauge",
        f'optout_sync_inbox_events{{status="pending"}} {pending}',
        f'optout_sync_inbox_events{{status="failed"}} {problems.get("failed", 0)}',
        f'optout_sync_inbox_events{{status="invalid"}} {problems.get("invalid", 0)}',
        "# HELP optout_sync_inbox_oldest_pending_seconds Age of the oldest pending event.",
        "# TYPE optout_sync_inbox_oldest_pending_seconds gauge",
        f"optout_sync_inbox_oldest_pending_seconds {float(oldest):.3f}",
    ]
    return "\n".join(lines) + "\n"
