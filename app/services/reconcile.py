"""Reconciliation: record opt-outs that Telnyx holds but we never received.

Telnyx retries a webhook 3 times, then gives up; an outage longer than that loses STOPs.
``GET /messaging_optouts`` lists the opt-outs Telnyx holds now (``to`` is the subscriber,
``from`` the sending address). Each one missing here is applied as a STOP with source
``reconcile``, dated at its ``created_at``, under a deterministic event id so a re-run never
records it twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import psycopg

from app.consent.audit_chain import AuditEntry
from app.consent.keywords import STOP, Verdict
from app.consent.phones import InvalidPhoneNumber, to_e164
from app.consent.rules import ConsentEvent, apply_to_subscriber
from app.consent.values import Source, Status
from app.services.apply_events import retry_on_key_taken
from app.store import audit_log, counters, subscribers
from app.telnyx.events import InboundMessage, InvalidPayload, parse_timestamp

SOURCE = Source.RECONCILE


@dataclass
class ReconcileResult:
    recorded: int = 0
    already_opted_out: int = 0
    already_reconciled: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def summary(self) -> str:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items())) or "none"
        return (
            f"{self.recorded} recorded, {self.already_opted_out} already opted out here, "
            f"{self.already_reconciled} already reconciled, skipped: {skipped}"
        )


@dataclass(frozen=True)
class TelnyxOptOut:
    profile: str
    subscriber: str
    sender: str
    keyword: str | None
    created_at: datetime

    @property
    def event_id(self) -> str:
        return f"reconcile:{self.profile}:{self.subscriber}:{self.created_at.isoformat()}"


def parse_item(item: Mapping[str, Any], profile: str | None) -> TelnyxOptOut | str:
    """An opt-out from Telnyx's list, or the reason it cannot be used."""
    owner = item.get("messaging_profile_id") or profile
    if not owner:
        return "without a messaging profile"
    try:
        subscriber = to_e164(str(item.get("to") or ""))
    except InvalidPhoneNumber:
        return "with a redacted or invalid number"
    try:
        created = parse_timestamp(item.get("created_at"), "created_at")
    except InvalidPayload:
        return "without a valid created_at"
    keyword = item.get("keyword")
    return TelnyxOptOut(
        str(owner),
        subscriber,
        str(item.get("from") or ""),
        keyword if isinstance(keyword, str) else None,
        created,
    )


def record_missing(
    conn: psycopg.Connection, items: Iterable[Mapping[str, Any]], profile: str | None = None
) -> ReconcileResult:
    """Apply every opt-out of ``items`` missing locally, inside the caller's transaction."""
    result = ReconcileResult()
    optouts: dict[str, TelnyxOptOut] = {}
    for item in items:
        parsed = parse_item(item, profile)
        if isinstance(parsed, str):
            result.skip(parsed)
        elif profile is None or parsed.profile == profile:
            optouts[parsed.event_id] = parsed
    if not optouts:
        _count(conn, result)
        return result
    done = audit_log.existing_event_ids(conn, list(optouts))
    result.already_reconciled = len(done)
    pending = [o for eid, o in optouts.items() if eid not in done]
    entries, already_opted_out = retry_on_key_taken(conn, lambda: _apply(conn, pending))
    result.recorded, result.already_opted_out = len(entries), already_opted_out
    audit_log.append(conn, [replace(entry, telnyx_block=True) for entry in entries])
    _count(conn, result)
    return result


def _apply(conn: psycopg.Connection, pending: list[TelnyxOptOut]) -> tuple[list[AuditEntry], int]:
    """Opt out the numbers of ``pending``; their audit entries and how many already were."""
    states = subscribers.lock(conn, ((o.profile, o.subscriber) for o in pending))
    now = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
    entries = []
    already_opted_out = 0
    for optout in sorted(pending, key=lambda o: (o.created_at, o.event_id)):
        state = states[(optout.profile, optout.subscriber)]
        if state.consent == Status.OPTED_OUT:
            already_opted_out += 1
            continue
        text = optout.keyword or "STOP"
        message = InboundMessage(
            event_id=optout.event_id,
            message_id=None,
            occurred_at=optout.created_at,
            messaging_profile_id=optout.profile,
            subscriber_number=optout.subscriber,
            our_number=optout.sender or None,  # type: ignore[arg-type]
            text=text,
            autoresponse_type=None,
        )
        verdict = Verdict(STOP, SOURCE, optout.keyword, text.casefold(), "telnyx opt-out list")
        # Telnyx still holds the block: the audit row says so.
        entries.append(apply_to_subscriber(ConsentEvent(message, verdict, now), state, "review"))
    subscribers.save(conn, states)
    return entries, already_opted_out


def _count(conn: psycopg.Connection, result: ReconcileResult) -> None:
    increments = {
        counters.labelled(counters.RECONCILE_METRIC, result=name): float(value)
        for name, value in (
            ("recorded", result.recorded),
            ("already_opted_out", result.already_opted_out),
            ("already_reconciled", result.already_reconciled),
            ("skipped", sum(result.skipped.values())),
        )
        if value
    }
    counters.add(conn, increments)
