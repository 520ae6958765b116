"""Read side of consent: subscribers, their history, and can-send (set-based)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

# Reason codes of can-send (spec §7).
OPTED_OUT, PENDING_REVIEW, CARRIER_BLOCK = "opted_out", "pending_review", "carrier_block"
_REASON_FOR_STATUS = {"opted_out": OPTED_OUT, "review": PENDING_REVIEW}

# The audit export's columns, in the order of spec §6.
AUDIT_EXPORT_FIELDS = (
    "seq", "recorded_at", "event_id", "message_id", "occurred_at", "received_at",
    "messaging_profile_id", "phone_number", "our_number", "country", "action", "source", "text",
    "autoresponse_type", "previous_status", "new_status", "superseded", "telnyx_block",
    "honored_seconds", "prev_hash", "hash",
)  # fmt: skip
AUDIT_EXPORT_SELECT = ", ".join(
    "round(extract(epoch FROM recorded_at - received_at)::numeric, 3)::float8 AS honored_seconds"
    if name == "honored_seconds"
    else name
    for name in AUDIT_EXPORT_FIELDS
)


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
            f"SELECT {AUDIT_EXPORT_SELECT} FROM audit_log"
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
            " WHERE messaging_profile_id = %s AND phone_number = ANY(%s)"
            " AND status IN ('opted_out', 'review')",
            (profile, list(recipients)),
        ).fetchall()
    )
    blocked = {
        row[0]
        for row in conn.execute(
            "SELECT phone_number FROM carrier_blocks"
            " WHERE toll_free_number = %s AND phone_number = ANY(%s) AND blocked",
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
