"""Read side of consent: subscribers, their history, and can-send (set-based)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from app.store.exports import AUDIT_COLUMNS

# Reason codes of can-send (spec §7).
OPTED_OUT, PENDING_REVIEW, CARRIER_BLOCK = "opted_out", "pending_review", "carrier_block"
_REASON_FOR_STATUS = {"opted_out": OPTED_OUT, "review": PENDING_REVIEW}

# History answers the audit export's columns (spec §6), as plain values for JSON.
_HISTORY_SELECT = ", ".join(f'{c.expression} AS "{c.name}"' for c in AUDIT_COLUMNS)


def get_subscriber(conn: psycopg.Connection, profile: str, number: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cursor:
        subscriber = cursor.execute(
            "SELECT phone_number, messaging_profile_id, status, updated_at, last_event_id"
            " FROM subscribers WHERE messaging_profile_id = %s AND phone_number = %s",
            (profile, number),
        ).fetchone()
        if subscriber is None:
            return None
        subscriber["carrier_blocks"] = cursor.execute(
            "SELECT toll_free_number, blocked, since FROM carrier_blocks"
            " WHERE phone_number = %s AND last_event_id <> '' ORDER BY toll_free_number",
            (number,),
        ).fetchall()
    return subscriber


def history(conn: psycopg.Connection, profile: str, number: str) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            f"SELECT {_HISTORY_SELECT} FROM audit_log"
            " WHERE phone_number = %s AND messaging_profile_id = %s ORDER BY seq",
            (number, profile),
        ).fetchall()


@dataclass(frozen=True)
class CanSend:
    to: str
    allowed: bool
    reasons: list[str]


def can_send(
    conn: psycopg.Connection, profile: str, sender: str, recipients: Sequence[str]
) -> list[CanSend]:
    """Answer for many recipients with two set-based queries, in the order asked."""
    statuses: dict[str, str] = dict(
        conn.execute(
            "SELECT phone_number, status FROM subscribers"
            " WHERE messaging_profile_id = %s AND phone_number = ANY(%b)"
            " AND status IN ('opted_out', 'review')",
            (profile, list(recipients)),
        ).fetchall()
    )
    blocked = {
        row[0]
        for row in conn.execute(
            "SELECT phone_number FROM carrier_blocks"
            " WHERE toll_free_number = %s AND phone_number = ANY(%b) AND blocked",
            (sender, list(recipients)),
        )
    }
    answers = []
    for number in recipients:
        reasons = []
        if number in statuses:
            reasons.append(_REASON_FOR_STATUS[statuses[number]])
        if number in blocked:
            reasons.append(CARRIER_BLOCK)
        answers.append(CanSend(to=number, allowed=not reasons, reasons=reasons))
    return answers


@dataclass(frozen=True)
class AuditStats:
    counts: list[tuple[str, str, int]]
    honored_all: tuple[float, float, float, float] | None
    honored_opt_out: tuple[float, float, float, float] | None


def audit_stats(
    conn: psycopg.Connection, since: Any = None, profile: str | None = None
) -> AuditStats:
    """Rows by action and source; p50/p90/p99/max of honored seconds (operator rows aside)."""
    where = "(%(since)s::timestamptz IS NULL OR recorded_at >= %(since)s)" \
            " AND (%(profile)s::text IS NULL OR messaging_profile_id = %(profile)s)"  # fmt: skip
    params = {"since": since, "profile": profile}
    counts = conn.execute(
        f"SELECT action, source, count(*) FROM audit_log WHERE {where}"
        " GROUP BY action, source ORDER BY action, source",
        params,
    ).fetchall()
    honored = "extract(epoch FROM recorded_at - received_at)"
    percentiles = (
        f"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY {honored}),"
        f" percentile_cont(0.9) WITHIN GROUP (ORDER BY {honored}),"
        f" percentile_cont(0.99) WITHIN GROUP (ORDER BY {honored}), max({honored})"
        f" FROM audit_log WHERE {where} AND source <> 'operator' AND received_at IS NOT NULL"
    )
    everything = conn.execute(percentiles, params).fetchone()
    opt_outs = conn.execute(percentiles + " AND action = 'opt_out'", params).fetchone()

    def floats(row: Any) -> tuple[float, float, float, float] | None:
        return None if row is None or row[0] is None else tuple(float(v) for v in row)  # type: ignore[return-value]

    return AuditStats([(a, s, int(n)) for a, s, n in counts], floats(everything), floats(opt_outs))
