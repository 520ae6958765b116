"""The outbox: one row per (endpoint, audit row) to announce, written in the audit row's
transaction, claimed by workers with a lease, and marked delivered or tried again."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from app.outbound.messages import DELIVERED, FAILING_LIMIT, GONE_OUTCOME, TYPE_OF_ACTION
from app.store import counters

_ACTIONS = list(TYPE_OF_ACTION)
_TYPES = [TYPE_OF_ACTION[action] for action in _ACTIONS]


def _announced(endpoints: str, audit_rows: str) -> str:
    """SELECT (endpoint, audit seq, webhook type) for the audit rows and endpoints matched,
    each endpoint taking only its types and its profile. Parameters: the actions and types
    arrays, then those of the two conditions."""
    return (
        "SELECT e.id, a.seq, t.type FROM audit_log a"
        " JOIN unnest(%b::text[], %b::text[]) AS t(action, type) ON t.action = a.action"
        f" JOIN endpoints e ON {endpoints}"
        "   AND (e.event_types IS NULL OR t.type = ANY (e.event_types))"
        "   AND (e.messaging_profile_id IS NULL"
        "        OR e.messaging_profile_id = a.messaging_profile_id)"
        f" WHERE {audit_rows} AND NOT a.superseded"
    )


def enqueue(conn: psycopg.Connection, first_seq: int, last_seq: int) -> int:
    """Outbox rows for the audit rows first_seq … last_seq, one per enabled endpoint that
    wants its type and profile; superseded rows changed nothing and are not announced."""
    return conn.execute(
        "INSERT INTO outbox (endpoint_id, audit_seq, event_type) "
        + _announced("e.enabled", "a.seq BETWEEN %s AND %s")
        + " AND EXISTS (SELECT 1 FROM endpoints WHERE enabled) ORDER BY a.seq, e.id",
        (_ACTIONS, _TYPES, first_seq, last_seq),
    ).rowcount


@dataclass(frozen=True)
class Delivery:
    outbox_id: int
    endpoint_id: str
    audit_seq: int
    attempts: int  # including this one
    url: str
    secret: str
    body: bytes


def claim_due(
    conn: psycopg.Connection, limit: int, lease: timedelta, data_columns: str
) -> list[Delivery]:
    """Claim up to ``limit`` due webhooks of enabled endpoints, counting the attempt and
    leasing them for ``lease`` (a worker that dies leaves them due again); commit before
    sending. ``data_columns`` is the audit export's SELECT list: the body's data."""
    rows = conn.execute(
        "WITH due AS ("
        "  SELECT o.id FROM outbox o JOIN endpoints e ON e.id = o.endpoint_id AND e.enabled"
        "  WHERE o.status = 'pending' AND o.next_attempt_at <= clock_timestamp()"
        "  ORDER BY o.next_attempt_at, o.id LIMIT %s FOR UPDATE OF o SKIP LOCKED"
        "), claimed AS ("
        "  UPDATE outbox o SET attempts = o.attempts + 1,"
        "    next_attempt_at = clock_timestamp() + %s"
        "  FROM due WHERE o.id = due.id"
        "  RETURNING o.id, o.endpoint_id, o.audit_seq, o.event_type, o.attempts"
        ")"
        " SELECT c.id, c.endpoint_id, c.audit_seq, c.attempts, e.url, e.secret,"
        "   json_build_object('type', c.event_type, 'timestamp', r.recorded_at,"
        "     'data', row_to_json(r))::text"
        " FROM claimed c JOIN endpoints e ON e.id = c.endpoint_id"
        f" JOIN LATERAL (SELECT {data_columns} FROM audit_log WHERE seq = c.audit_seq) r"
        "   ON true"
        " ORDER BY c.id",
        (limit, lease),
    ).fetchall()
    return [
        Delivery(outbox_id, endpoint_id, seq, attempts, url, secret, body.encode())
        for outbox_id, endpoint_id, seq, attempts, url, secret, body in rows
    ]


@dataclass(frozen=True)
class Attempt:
    """One attempt's answer and what became of its webhook."""

    outbox_id: int
    endpoint_id: str
    status_code: int | None
    error: str | None
    seconds: float
    outcome: str  # messages.Decision.outcome
    retry_after: timedelta | None


def record(conn: psycopg.Connection, attempts: Sequence[Attempt]) -> None:
    """Log the attempts, settle their webhooks and their endpoints' health, and count them,
    in the caller's transaction."""
    if not attempts:
        return
    ordered = sorted(attempts, key=lambda a: a.outbox_id)  # lock rows in one order
    conn.execute(
        "INSERT INTO delivery_attempts (outbox_id, endpoint_id, status_code, error, duration_ms)"
        " SELECT * FROM unnest(%s::int8[], %s::text[], %s::int[], %s::text[], %s::int[])",
        (
            [a.outbox_id for a in ordered],
            [a.endpoint_id for a in ordered],
            [a.status_code for a in ordered],
            [a.error for a in ordered],
            [round(a.seconds * 1000) for a in ordered],
        ),
    )
    conn.execute(
        "UPDATE outbox o SET"
        "  status = CASE u.outcome WHEN 'delivered' THEN 'delivered'"
        "    WHEN 'retrying' THEN 'pending' ELSE 'failed' END,"
        "  delivered_at = CASE WHEN u.outcome = 'delivered' THEN clock_timestamp() END,"
        "  next_attempt_at = CASE WHEN u.outcome = 'retrying'"
        "    THEN clock_timestamp() + u.retry_after ELSE o.next_attempt_at END,"
        "  last_error = u.error"
        " FROM unnest(%s::int8[], %s::text[], %s::interval[], %s::text[])"
        "   AS u(id, outcome, retry_after, error)"
        " WHERE o.id = u.id",
        (
            [a.outbox_id for a in ordered],
            [a.outcome for a in ordered],
            [a.retry_after for a in ordered],
            [_error_text(a) for a in ordered],
        ),
    )
    _settle_endpoints(conn, ordered)
    increments: counters.Increments = defaultdict(float)
    for attempt in ordered:
        increments[(counters.DELIVERIES_METRIC, f'outcome="{attempt.outcome}"')] += 1
    counters.add(conn, increments)


def _error_text(attempt: Attempt) -> str | None:
    if attempt.outcome == DELIVERED:
        return None
    if attempt.status_code is not None:
        return f"HTTP {attempt.status_code}"
    return attempt.error


def _settle_endpoints(conn: psycopg.Connection, attempts: Sequence[Attempt]) -> None:
    """A success clears an endpoint's run of failures; a failure starts or extends it, and a
    run longer than FAILING_LIMIT disables the endpoint, as does a 410."""
    succeeded = sorted({a.endpoint_id for a in attempts if a.outcome == DELIVERED})
    failed = sorted({a.endpoint_id for a in attempts if a.outcome != DELIVERED} - set(succeeded))
    gone = sorted({a.endpoint_id for a in attempts if a.outcome == GONE_OUTCOME})
    if succeeded:
        conn.execute("UPDATE endpoints SET failing_since = NULL WHERE id = ANY(%s)", (succeeded,))
    if failed:
        conn.execute(
            "UPDATE endpoints SET failing_since = coalesce(failing_since, clock_timestamp()),"
            "  enabled = enabled AND coalesce(failing_since, clock_timestamp())"
            "    > clock_timestamp() - %s,"
            "  disabled_reason = CASE WHEN enabled AND coalesce(failing_since,"
            "    clock_timestamp()) <= clock_timestamp() - %s"
            "    THEN 'every delivery failed for 5 days' ELSE disabled_reason END"
            " WHERE id = ANY(%s)",
            (FAILING_LIMIT, FAILING_LIMIT, failed),
        )
    if gone:
        conn.execute(
            "UPDATE endpoints SET enabled = false,"
            "  disabled_reason = 'the receiver answered 410 Gone' WHERE id = ANY(%s)",
            (gone,),
        )


def backlog(conn: psycopg.Connection) -> tuple[int, float]:
    """(webhooks waiting to be delivered, seconds the oldest of them has waited)."""
    count, oldest = conn.execute(
        "SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)"
        " FROM outbox WHERE status = 'pending'"
    ).fetchone()  # type: ignore[misc]
    return int(count), float(oldest)


def backlog_exposition(conn: psycopg.Connection) -> str:
    """Prometheus gauges for the webhooks waiting to be delivered (a partial index)."""
    pending, oldest = backlog(conn)
    return (
        "# HELP optout_sync_outbox_pending Outbound webhooks waiting to be delivered.\n"
        "# TYPE optout_sync_outbox_pending gauge\n"
        f"optout_sync_outbox_pending {pending}\n"
        "# HELP optout_sync_outbox_oldest_seconds Age of the oldest webhook waiting.\n"
        "# TYPE optout_sync_outbox_oldest_seconds gauge\n"
        f"optout_sync_outbox_oldest_seconds {oldest:.3f}\n"
    )


def attempts_of(conn: psycopg.Connection, endpoint_id: str, limit: int) -> list[dict[str, Any]]:
    """An endpoint's latest attempts, newest first."""
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "SELECT d.attempted_at, o.audit_seq, o.event_type, o.attempts, d.status_code,"
            "  d.error, d.duration_ms, o.status"
            " FROM delivery_attempts d JOIN outbox o ON o.id = d.outbox_id"
            " WHERE d.endpoint_id = %s ORDER BY d.attempted_at DESC LIMIT %s",
            (endpoint_id, limit),
        ).fetchall()


def replay(conn: psycopg.Connection, endpoint_id: str, since: datetime) -> int:
    """Deliver again every webhook of the endpoint's audit rows recorded since ``since``
    (with their first webhook-id), adding the ones it never had; return how many."""
    conn.execute(
        "INSERT INTO outbox (endpoint_id, audit_seq, event_type) "
        + _announced("e.id = %s", "a.recorded_at >= %s")
        + " ON CONFLICT (endpoint_id, audit_seq) DO NOTHING",
        (_ACTIONS, _TYPES, endpoint_id, since),
    )
    return conn.execute(
        "UPDATE outbox o SET status = 'pending', attempts = 0,"
        "  next_attempt_at = clock_timestamp(), last_error = NULL"
        " FROM audit_log a WHERE a.seq = o.audit_seq AND o.endpoint_id = %s"
        "   AND a.recorded_at >= %s",
        (endpoint_id, since),
    ).rowcount
