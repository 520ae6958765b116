"""A what-if before changing the rules (`optout-sync events reclassify`): what the engine, with
the rules given, would decide today for the inbound texts kept in the inbox, next to what was
decided when they arrived. Reads only: it runs in a read-only transaction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from app.consent.rules import action_of
from app.consent.values import ORDINARY
from app.services.apply_events import Rules
from app.telnyx.events import InvalidPayload, parse_envelope, parse_inbound_message


@dataclass(frozen=True)
class Decision:
    event_id: str
    received_at: datetime
    text: str
    then: str  # the action recorded when it was applied, or ordinary
    now: str  # what the rules given would decide


@dataclass
class Summary:
    texts: int = 0
    changes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (then, now) → texts

    @property
    def changed(self) -> int:
        return sum(self.changes.values())


def decided_then(outcome: str | None) -> str:
    """The action an inbox outcome records ("superseded opt_out, carrier_block" → opt_out)."""
    first = (outcome or ORDINARY).split(",")[0].strip()
    return first.removeprefix("superseded ")


def reclassify(
    conn: psycopg.Connection, since: datetime, rules: Rules, summary: Summary
) -> Iterator[Decision]:
    """Yield each stored inbound text since ``since`` that ``rules`` would decide differently,
    counting every text in ``summary``."""
    with conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        with conn.cursor(name="reclassify") as cursor:
            cursor.itersize = 2000
            cursor.execute(
                "SELECT event_id, received_at, outcome, raw_body FROM webhook_events"
                " WHERE event_type = 'message.received' AND status = 'processed'"
                " AND received_at >= %s ORDER BY pk",
                (since,),
            )
            for event_id, received_at, outcome, body in cursor:
                try:
                    message = parse_inbound_message(parse_envelope(bytes(body)))
                except InvalidPayload:
                    continue  # it was not classified then either
                verdict = rules.classify(message)
                then, now = decided_then(outcome), action_of(verdict, rules.possible_opt_out_policy)
                summary.texts += 1
                if then != now:
                    summary.changes[(then, now)] += 1
                    yield Decision(event_id, received_at, message.text, then, now)
