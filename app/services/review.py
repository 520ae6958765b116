"""Possible opt-outs held for review, and the operator's decision on each.

A decision is audited with source ``operator``. Confirming opts the number out as of the
decision; dismissing releases the hold so the number's last STOP/START decides again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from app.consent.phones import country_of
from app.services.apply_events import lock_subscribers, save_subscribers
from app.store import audit_log
from app.store.audit_log import AuditEntry

DECISIONS = {"confirm": "review_confirmed", "dismiss": "review_dismissed"}


class ReviewError(Exception):
    pass


def list_pending(conn: psycopg.Connection, profile: str | None = None) -> list[dict[str, Any]]:
    """Numbers held for review, oldest first, with the text that put them there."""
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "SELECT s.messaging_profile_id, s.phone_number, s.review_occurred_at AS occurred_at,"
            "  s.review_event_id AS event_id, a.text, a.our_number"
            " FROM subscribers s LEFT JOIN audit_log a"
            "   ON a.event_id = s.review_event_id AND a.action = 'possible_opt_out'"
            " WHERE s.status = 'review'"
            "   AND (%(profile)s::text IS NULL OR s.messaging_profile_id = %(profile)s)"
            " ORDER BY s.review_occurred_at, s.phone_number",
            {"profile": profile},
        ).fetchall()


@dataclass(frozen=True)
class Decision:
    phone_number: str
    messaging_profile_id: str
    action: str
    previous_status: str
    new_status: str
    seq: int


def decide(conn: psycopg.Connection, profile: str, phone: str, decision: str) -> Decision:
    """Confirm or dismiss the review of one number, inside the caller's transaction."""
    action = DECISIONS[decision]
    key = (profile, phone)
    states = lock_subscribers(conn, [key]) if _exists(conn, key) else {}
    state = states.get(key)
    if state is None or state.status != "review":
        current = state.status if state else "never seen"
        raise ReviewError(f"{phone} on profile {profile} is not held for review (it is {current})")
    held = conn.execute(
        "SELECT text, our_number FROM audit_log"
        " WHERE event_id = %s AND action = 'possible_opt_out'",
        (state.review_last[1] if state.review_last else None,),
    ).fetchone()
    now: datetime = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
    previous = state.status
    if decision == "confirm":
        # The operator's decision is a consent event of its own, as of now.
        state.consent, state.last = "opted_out", (now, f"operator:{uuid.uuid4()}")
        state.review_state = "confirmed"
    else:
        state.review_state = "dismissed"
    state.changed = True
    save_subscribers(conn, states)
    (seq,) = audit_log.append(
        conn,
        [
            AuditEntry(
                event_id=None, message_id=None, occurred_at=now, received_at=now,
                messaging_profile_id=profile, phone_number=phone,
                our_number=held[1] if held else None, country=country_of(phone),
                action=action, source="operator", text=held[0] if held else None,
                autoresponse_type=None, previous_status=previous, new_status=state.status,
                superseded=False, telnyx_block=False,
            )
        ],
    )  # fmt: skip
    return Decision(phone, profile, action, previous, state.status, seq)


def _exists(conn: psycopg.Connection, key: tuple[str, str]) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM subscribers WHERE messaging_profile_id = %s AND phone_number = %s", key
        ).fetchone()
        is not None
    )
