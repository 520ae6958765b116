"""What the read API answers: a subscriber with its carrier blocks, its history, and can-send
for many numbers at once (two set-based queries)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from app.consent.values import Status
from app.services.exports import AUDIT_COLUMNS
from app.store import carrier_blocks, subscribers

# Reason codes of can-send (spec §7).
OPTED_OUT, PENDING_REVIEW, CARRIER_BLOCK = "opted_out", "pending_review", "carrier_block"
_REASON_FOR_STATUS = {Status.OPTED_OUT: OPTED_OUT, Status.REVIEW: PENDING_REVIEW}


def get_subscriber(conn: psycopg.Connection, profile: str, number: str) -> dict[str, Any] | None:
    subscriber = subscribers.get(conn, profile, number)
    if subscriber is not None:
        subscriber["carrier_blocks"] = carrier_blocks.of_subscriber(conn, number)
    return subscriber


# History answers the audit export's columns (spec §6), as plain values for JSON.
_HISTORY_SELECT = ", ".join(f'{c.expression} AS "{c.name}"' for c in AUDIT_COLUMNS)


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
    """Answer for many recipients, in the order asked."""
    statuses = subscribers.not_sendable(conn, profile, recipients)
    blocked = carrier_blocks.blocked_from(conn, sender, recipients)
    answers = []
    for number in recipients:
        reasons = []
        if number in statuses:
            reasons.append(_REASON_FOR_STATUS[Status(statuses[number])])
        if number in blocked:
            reasons.append(CARRIER_BLOCK)
        answers.append(CanSend(to=number, allowed=not reasons, reasons=reasons))
    return answers
