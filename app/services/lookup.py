"""What the read API answers: a subscriber with its carrier blocks, its history, and can-send
for many numbers at once (two set-based queries)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from app.consent.scopes import CARRIER_BLOCK, Block, ProfileConsent, Scopes, blocks
from app.services.exports import AUDIT_COLUMNS
from app.store import carrier_blocks, subscribers


def get_subscriber(conn: psycopg.Connection, profile: str, number: str) -> dict[str, Any] | None:
    subscriber = subscribers.get(conn, profile, number)
    if subscriber is not None:
        subscriber["carrier_blocks"] = carrier_blocks.of_subscriber(conn, number)
    return subscriber


# History answers the audit export's columns (spec §6), as plain values for JSON.
_HISTORY_SELECT = ", ".join(f'{c.expression} AS "{c.name}"' for c in AUDIT_COLUMNS)


def history(conn: psycopg.Connection, profile: str | None, number: str) -> list[dict[str, Any]]:
    """Every audit row of a number, oldest first: on one profile, or on all (None)."""
    on_profile = "" if profile is None else " AND messaging_profile_id = %s"
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            f"SELECT {_HISTORY_SELECT} FROM audit_log"
            f" WHERE phone_number = %s{on_profile} ORDER BY seq",
            (number,) if profile is None else (number, profile),
        ).fetchall()


@dataclass(frozen=True)
class CanSend:
    to: str
    allowed: bool
    reasons: list[str]  # the codes of blocked_by, each once
    blocked_by: list[Block]


def can_send(
    conn: psycopg.Connection,
    profile: str,
    sender: str,
    recipients: Sequence[str],
    scopes: Scopes | None = None,
) -> list[CanSend]:
    """Answer for many recipients, in the order asked: consent on the profiles that reach
    ``profile`` under the consent scopes, and the carrier's blocks from ``sender``."""
    scopes = scopes or Scopes()
    facts: dict[str, list[ProfileConsent]] = defaultdict(list)
    for number, fact in subscribers.consent_across(conn, scopes.reach(profile), recipients):
        facts[number].append(fact)
    carrier = carrier_blocks.blocked_from(conn, sender, recipients)
    answers = []
    for number in recipients:
        found = blocks(profile, facts.get(number, ()), scopes)
        if number in carrier:
            since, through = carrier[number]
            found.append(Block(CARRIER_BLOCK, through, since, None))
        reasons = list(dict.fromkeys(block.reason for block in found))
        answers.append(CanSend(number, not found, reasons, found))
    return answers


def subscriber_everywhere(conn: psycopg.Connection, number: str) -> dict[str, Any] | None:
    """A number's state on every profile, and its carrier blocks; None if never seen."""
    profiles = subscribers.everywhere(conn, number)
    if not profiles:
        return None
    return {
        "phone_number": number,
        "profiles": profiles,
        "carrier_blocks": carrier_blocks.of_subscriber(conn, number),
    }
