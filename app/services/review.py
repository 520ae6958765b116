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

from app.consent.audit_chain import AuditEntry
from app.consent.phones import country_of
from app.consent.values import Action, ReviewState, Source, Status
from app.store import audit_log, subscribers

DECISIONS = {"confirm": Action.REVIEW_CONFIRMED, "dismiss": Action.REVIEW_DISMISSED}


class ReviewError(Exception):
    pass


def list_pending(conn: psycopg.Connection, profile: str | None = None) -> list[dict[str, Any]]:
    """Numbers held for review, oldest first, with the text that put them there."""
    return subscribers.held_for_review(conn, profile)


@dataclass(frozen=True)
class Decision:
    phone_number: str
    messaging_profile_id: str
    action: str
    previous_status: str
    new_status: str
    seq: int


def decide(
    conn: psycopg.Connection,
    profile: str,
    phone: str,
    decision: str,
    operator: str | None = None,
) -> Decision:
    """Confirm or dismiss the review of one number, inside the caller's transaction. A named
    ``operator`` (the console's) is recorded in the audit row's event id,
    ``operator:<name>:<uuid>``, which the chain covers."""
    action = DECISIONS[decision]
    key = (profile, phone)
    states = subscribers.lock(conn, [key]) if subscribers.exists(conn, key) else {}
    state = states.get(key)
    if state is None or state.status != Status.REVIEW:
        current = state.status if state else "never seen"
        raise ReviewError(f"{phone} on profile {profile} is not held for review (it is {current})")
    text, our_number = audit_log.held_text(
        conn, state.review_last[1] if state.review_last else None
    )
    now: datetime = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
    previous = state.status
    if decision == "confirm":
        # The operator's decision is a consent event of its own, as of now.
        state.consent, state.last = Status.OPTED_OUT, (now, f"operator:{uuid.uuid4()}")
        state.record(Status.OPTED_OUT, now)
        state.review_state = ReviewState.CONFIRMED
    else:
        state.review_state = ReviewState.DISMISSED
    state.changed = True
    subscribers.save(conn, states)
    (seq,) = audit_log.append(
        conn,
        [
            AuditEntry(
                event_id=f"operator:{operator}:{uuid.uuid4()}" if operator else None,
                message_id=None,
                occurred_at=now,
                received_at=now,
                messaging_profile_id=profile,
                phone_number=phone,
                our_number=our_number,
                country=country_of(phone),
                action=action,
                source=Source.OPERATOR,
                text=text,
                autoresponse_type=None,
                previous_status=previous,
                new_status=state.status,
                superseded=False,
                telnyx_block=False,
            )
        ],
    )
    return Decision(phone, profile, action, previous, state.status, seq)
