"""Apply consent from any channel (spec §10) in one transaction, by the same rules as texts:
last writer wins by occurred_at, audited with source api, the channel and the evidence's
SHA-256; a repeated idempotency key answers duplicate and changes nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

import psycopg

from app.consent.audit_chain import AuditEntry
from app.consent.intake import ConsentRecord
from app.consent.keywords import START, STOP, Verdict
from app.consent.rules import ConsentEvent, apply_to_subscriber
from app.consent.values import Source
from app.services.apply_events import retry_on_key_taken
from app.store import audit_log, subscribers
from app.telnyx.events import InboundMessage

APPLIED, SUPERSEDED, DUPLICATE = "applied", "superseded", "duplicate"


@dataclass(frozen=True)
class IntakeResult:
    status: str  # applied | superseded | duplicate
    seq: int


def event_id_of(record: ConsentRecord) -> str:
    """An idempotency key is the event's id, so a repeat finds the first one."""
    return f"api:{record.idempotency_key or uuid.uuid4()}"


def apply_records(conn: psycopg.Connection, records: list[ConsentRecord]) -> list[IntakeResult]:
    """Apply the records inside the caller's transaction; results in request order."""
    ids = [event_id_of(record) for record in records]
    earlier = audit_log.first_results(
        conn, [i for i, r in zip(ids, records, strict=True) if r.idempotency_key]
    )
    fresh = [(i, r) for i, r in zip(ids, records, strict=True) if i not in earlier]
    entries = retry_on_key_taken(conn, lambda: _apply(conn, fresh))
    seqs = dict(
        zip((entry.event_id for entry in entries), audit_log.append(conn, entries), strict=True)
    )
    audit_log.store_evidence(
        conn,
        [(i, r.evidence, r.evidence_sha256) for i, r in fresh if r.evidence and r.evidence_sha256],
    )
    by_id = {entry.event_id: entry for entry in entries}
    results = []
    for event_id in ids:
        if event_id in earlier:
            results.append(IntakeResult(DUPLICATE, earlier[event_id][0]))
        else:
            entry = by_id[event_id]
            results.append(
                IntakeResult(SUPERSEDED if entry.superseded else APPLIED, seqs[event_id])
            )
    return results


def _apply(conn: psycopg.Connection, fresh: list[tuple[str, ConsentRecord]]) -> list[AuditEntry]:
    states = subscribers.lock(conn, ((r.messaging_profile_id, r.phone_number) for _, r in fresh))
    now: datetime = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
    entries = []
    for event_id, record in sorted(fresh, key=lambda pair: (pair[1].occurred_at, pair[0])):
        message = InboundMessage(
            event_id=event_id,
            message_id=None,
            occurred_at=record.occurred_at,
            messaging_profile_id=record.messaging_profile_id,
            subscriber_number=record.phone_number,
            our_number="",
            text="",
            autoresponse_type=None,
        )
        op = STOP if record.action == "opt_out" else START
        verdict = Verdict(op, Source.API, None, "", "api")
        key = (record.messaging_profile_id, record.phone_number)
        entry = apply_to_subscriber(ConsentEvent(message, verdict, now), states[key], "review")
        entries.append(
            replace(
                entry,
                our_number=None,
                text=None,
                channel=record.channel,
                evidence_sha256=record.evidence_sha256,
            )
        )
    subscribers.save(conn, states)
    return entries


def evidence_of(conn: psycopg.Connection, seq: int) -> bytes | None:
    """The stored evidence of audit row ``seq``, or None."""
    return audit_log.evidence_of(conn, seq)
