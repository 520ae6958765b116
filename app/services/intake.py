"""Apply consent from any channel (spec §10) by the same rules as texts: last writer wins by
occurred_at, audited with source api, the channel and the evidence's SHA-256; a repeated
idempotency key answers duplicate and changes nothing.

POST /v1/consent applies one request in one transaction (apply_records). An import stages a
whole file by COPY, sets repeats aside in SQL, then applies the rest set-based, in committed
batches in (occurred_at, event id) order (stage_import, apply_import).
"""

from __future__ import annotations

import functools
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import psycopg

from app.consent.audit_chain import AuditEntry
from app.consent.intake import ConsentRecord
from app.consent.keywords import START, STOP, Verdict
from app.consent.phones import country_of
from app.consent.rules import ConsentEvent, apply_to_subscriber
from app.consent.values import Action, Source
from app.services.apply_events import retry_on_key_taken
from app.store import audit_log, consent_staging, subscribers
from app.telnyx.events import InboundMessage

APPLIED, SUPERSEDED, DUPLICATE = "applied", "superseded", "duplicate"

# Rows per committed batch of an import: the audit chain's lock is held for one batch at a
# time (about a quarter of a second), so texts arriving meanwhile wait no longer than that.
IMPORT_BATCH_ROWS = 10_000


@dataclass(frozen=True)
class IntakeResult:
    status: str  # applied | superseded | duplicate
    seq: int


class Fact(NamedTuple):
    """One consent fact to apply, as a request or the staging table holds it."""

    event_id: str
    messaging_profile_id: str
    phone_number: str
    action: str  # opt_out | opt_in
    occurred_at: datetime
    channel: str
    evidence_sha256: str | None


def event_id_of(record: ConsentRecord) -> str:
    """An idempotency key is the event's id, so a repeat finds the first one."""
    return f"api:{record.idempotency_key or uuid.uuid4()}"


def apply_records(conn: psycopg.Connection, records: list[ConsentRecord]) -> list[IntakeResult]:
    """Apply the records inside the caller's transaction; results in request order."""
    ids = [event_id_of(record) for record in records]
    earlier = audit_log.first_results(
        conn, [i for i, r in zip(ids, records, strict=True) if r.idempotency_key]
    )
    fresh = [
        _fact(event_id, record)
        for event_id, record in zip(ids, records, strict=True)
        if event_id not in earlier
    ]
    entries = retry_on_key_taken(conn, lambda: _apply(conn, fresh))
    seqs = dict(
        zip((entry.event_id for entry in entries), audit_log.append(conn, entries), strict=True)
    )
    audit_log.store_evidence(
        conn,
        [
            (i, r.evidence, r.evidence_sha256)
            for i, r in zip(ids, records, strict=True)
            if i not in earlier and r.evidence and r.evidence_sha256
        ],
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


def _fact(event_id: str, record: ConsentRecord) -> Fact:
    return Fact(
        event_id,
        record.messaging_profile_id,
        record.phone_number,
        record.action,
        record.occurred_at,
        record.channel,
        record.evidence_sha256,
    )


def stage_import(conn: psycopg.Connection, records: Iterable[tuple[int, ConsentRecord]]) -> int:
    """Copy (line, record) pairs into this session's staging table; return how many. A
    record without an idempotency key gets none here: parse_import_row derives one."""
    consent_staging.create(conn)
    return consent_staging.copy_in(
        conn,
        (
            consent_staging.StagedRow(
                line,
                event_id_of(record),
                record.messaging_profile_id,
                record.phone_number,
                record.action,
                record.occurred_at,
                record.channel,
                record.evidence,
                record.evidence_sha256,
            )
            for line, record in records
        ),
    )


def apply_import(
    conn: psycopg.Connection,
    staged: int,
    dry_run: bool = False,
    on_batch: Callable[[int], None] = lambda rows: None,
    batch_rows: int = IMPORT_BATCH_ROWS,
) -> Counter[str]:
    """Apply the ``staged`` rows stage_import staged, on an autocommit connection; count the
    outcomes.

    Each batch commits, so an interrupted import keeps what it applied and a re-run goes on
    from there. A dry run applies everything in one transaction and rolls it back, so later
    batches still see what earlier ones would have changed.
    """
    counts: Counter[str] = Counter()
    with (
        conn.transaction(force_rollback=True) if dry_run else nullcontext(),
        ThreadPoolExecutor(max_workers=1) as helper,
    ):
        to_apply = consent_staging.put_in_order(conn)
        counts[DUPLICATE] = staged - to_apply
        for first in range(0, to_apply, batch_rows):
            last = min(first + batch_rows, to_apply)
            # Looking up the numbers' countries (phonenumbers, ~10 µs each) is half the
            # Python work of a batch: a thread does it while the database applies it.
            countries = helper.submit(_warm_countries, consent_staging.numbers(conn, first, last))
            with conn.transaction():
                applied = retry_on_key_taken(
                    conn, functools.partial(consent_staging.apply_batch, conn, first, last)
                )
                countries.result()
                received_at = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
                audit_log.append(conn, [_audit_entry(fact, received_at) for fact in applied])
                consent_staging.store_evidence(conn, first, last)
            counts.update(SUPERSEDED if fact.superseded else APPLIED for fact in applied)
            on_batch(len(applied))
    return counts


def _warm_countries(numbers: list[str]) -> None:
    for number in numbers:
        country_of(number)  # cached: the audit entries ask again


def _audit_entry(fact: consent_staging.Applied, received_at: datetime) -> AuditEntry:
    """The audit entry of an imported fact: what rules.apply_to_subscriber writes for the same
    fact from POST /v1/consent (tests hold the two to it)."""
    return AuditEntry(
        event_id=fact.event_id,
        message_id=None,
        occurred_at=fact.occurred_at,
        received_at=received_at,
        messaging_profile_id=fact.messaging_profile_id,
        phone_number=fact.phone_number,
        our_number=None,
        country=country_of(fact.phone_number),
        action=Action.OPT_OUT if fact.action == "opt_out" else Action.OPT_IN,
        source=Source.API,
        text=None,
        autoresponse_type=None,
        previous_status=fact.previous_status,
        new_status=fact.new_status,
        superseded=fact.superseded,
        telnyx_block=False,
        channel=fact.channel,
        evidence_sha256=fact.evidence_sha256,
    )


def _apply(conn: psycopg.Connection, facts: Sequence[Fact]) -> list[AuditEntry]:
    """Lock the facts' subscribers, apply the facts in (occurred_at, event id) order, save."""
    states = subscribers.lock(conn, ((f.messaging_profile_id, f.phone_number) for f in facts))
    now: datetime = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
    entries = []
    for fact in sorted(facts, key=lambda f: (f.occurred_at, f.event_id)):
        message = InboundMessage(
            event_id=fact.event_id,
            message_id=None,
            occurred_at=fact.occurred_at,
            messaging_profile_id=fact.messaging_profile_id,
            subscriber_number=fact.phone_number,
            our_number="",
            text="",
            autoresponse_type=None,
        )
        verdict = _VERDICTS[fact.action]
        event = ConsentEvent(message, verdict, now, fact.channel, fact.evidence_sha256)
        key = (fact.messaging_profile_id, fact.phone_number)
        entries.append(apply_to_subscriber(event, states[key], "review"))
    subscribers.save(conn, states)
    return entries


_VERDICTS = {
    "opt_out": Verdict(STOP, Source.API, None, "", "api"),
    "opt_in": Verdict(START, Source.API, None, "", "api"),
}


def evidence_of(conn: psycopg.Connection, seq: int) -> bytes | None:
    """The stored evidence of audit row ``seq``, or None."""
    return audit_log.evidence_of(conn, seq)
