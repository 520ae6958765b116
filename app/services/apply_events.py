"""Apply inbox events: classify each text, change subscribers and carrier blocks by the rules
(consent.rules), append their audit rows, and mark the events done, in one transaction.

Everything here takes a psycopg connection or pool, never Flask or Celery; workers.tasks
calls drain().
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from app.consent import send_errors
from app.consent.audit_chain import AuditEntry
from app.consent.keyword_configs import KeywordEngine
from app.consent.keywords import POSSIBLE_OPT_OUT, Verdict
from app.consent.phones import country_of
from app.consent.rules import ConsentEvent, apply_to_carrier_block, apply_to_subscriber
from app.consent.values import ORDINARY
from app.store import audit_log, carrier_blocks, counters, inbox, subscribers
from app.store.db import KeyTaken
from app.store.inbox import ClaimedEvent
from app.telnyx.events import (
    MESSAGE_RECEIVED,
    SEND_REPORTS,
    InboundMessage,
    InvalidPayload,
    parse_envelope,
    parse_inbound_message,
    parse_send_errors,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Rules:
    """What the worker needs to decide: the keyword engine and the possible-opt-out policy."""

    engine: KeywordEngine = field(default_factory=KeywordEngine)
    possible_opt_out_policy: str = "review"  # review | opt_out | ignore

    def classify(self, message: InboundMessage) -> Verdict:
        """The engine's verdict on a text, with the configurations for its profile and the
        sender's country."""
        return self.engine.classify(
            message.text,
            message.autoresponse_type,
            message.messaging_profile_id,
            country_of(message.subscriber_number),
        )


@dataclass
class BatchResult:
    claimed: int = 0
    processed: int = 0
    invalid: int = 0
    ignored: int = 0
    failed: int = 0
    audited: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    out_of_time: bool = False  # drain stopped at its time budget, with events perhaps left

    def add(self, other: BatchResult) -> None:
        for name in ("claimed", "processed", "invalid", "ignored", "failed", "audited"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for outcome, count in other.outcomes.items():
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + count


def retry_on_key_taken(conn: psycopg.Connection, apply: Callable[[], T]) -> T:
    """Run ``apply`` (lock, decide, save) in a savepoint, again if a new key was taken."""
    for _ in range(_KEY_TAKEN_ATTEMPTS - 1):
        try:
            with conn.transaction():
                return apply()
        except KeyTaken:
            # The other transaction has committed the row: the next lock reads it.
            log.info("a new subscriber key was inserted concurrently; applying again")
    with conn.transaction():
        return apply()


_KEY_TAKEN_ATTEMPTS = 5


Outcome = tuple[int, str, str]  # (inbox pk, status, what was decided or what went wrong)


def apply_classified(
    conn: psycopg.Connection, items: Sequence[tuple[int, ConsentEvent]], rules: Rules
) -> tuple[list[AuditEntry], list[Outcome]]:
    """Apply (inbox pk, consent event) pairs; return their audit entries and inbox outcomes."""
    ordinary: list[Outcome] = [
        (pk, inbox.PROCESSED, ORDINARY) for pk, e in items if e.verdict.op is None
    ]
    consent = [(pk, event) for pk, event in items if event.verdict.op is not None]
    if not consent:
        return [], ordinary
    entries, outcomes = retry_on_key_taken(conn, lambda: apply_events(conn, consent, rules))
    return entries, ordinary + outcomes


def apply_events(
    conn: psycopg.Connection, events: Sequence[tuple[int, ConsentEvent]], rules: Rules
) -> tuple[list[AuditEntry], list[Outcome]]:
    """Lock the state rows the events touch, apply the events oldest first, save the rows."""
    states = subscribers.lock(conn, (event.subscriber_key for _, event in events))
    keys = [event.carrier_key for _, event in events]
    blocks = carrier_blocks.lock(conn, (key for key in keys if key))
    entries: list[AuditEntry] = []
    outcomes: list[Outcome] = []
    # Oldest first, so the audit trail of one batch reads in the order things happened.
    for (pk, event), carrier_key in sorted(
        zip(events, keys, strict=True), key=lambda pair: pair[0][1].order
    ):
        entry = apply_to_subscriber(
            event, states[event.subscriber_key], rules.possible_opt_out_policy
        )
        entries.append(entry)
        notes = [("superseded " if entry.superseded else "") + entry.action]
        if carrier_key:
            carrier_entry = apply_to_carrier_block(event, blocks[carrier_key])
            entries.append(carrier_entry)
            notes.append(("superseded " if carrier_entry.superseded else "") + carrier_entry.action)
        outcomes.append((pk, inbox.PROCESSED, ", ".join(notes)))
    subscribers.save(conn, states)
    carrier_blocks.save(conn, blocks)
    return entries, outcomes


def apply_claimed(
    conn: psycopg.Connection,
    claimed: Sequence[ClaimedEvent],
    max_attempts: int,
    rules: Rules = Rules(),
) -> BatchResult:
    """Classify and apply claimed events inside the caller's transaction."""
    result = BatchResult(claimed=len(claimed))
    done: list[Outcome] = []
    items: list[tuple[int, ConsentEvent]] = []
    for event in claimed:
        try:
            envelope = parse_envelope(event.raw_body)
            if envelope.event_type in SEND_REPORTS:  # spec §12: what a refused send says
                refused = send_errors.consent_events(parse_send_errors(envelope), event.received_at)
                items.extend((event.pk, consent_event) for consent_event in refused)
                if not refused:
                    done.append((event.pk, inbox.IGNORED, "no consent in its errors"))
                continue
            if envelope.event_type != MESSAGE_RECEIVED:
                done.append((event.pk, inbox.IGNORED, envelope.event_type))
                continue
            message = parse_inbound_message(envelope)
            verdict = rules.classify(message)
            if verdict.op == POSSIBLE_OPT_OUT and rules.possible_opt_out_policy == "ignore":
                # Kept in the inbox as an ordinary message: policy says intent changes nothing.
                verdict = Verdict(None, None, None, verdict.normalized, "intent ignored by policy")
            items.append((event.pk, ConsentEvent(message, verdict, event.received_at)))
        except InvalidPayload as exc:
            done.append((event.pk, inbox.INVALID, str(exc)))
        except Exception as exc:  # a poison event: count the attempt, never block the others
            log.exception("event %s could not be classified", event.event_id)
            if (
                inbox.record_failure(conn, event.pk, f"{type(exc).__name__}: {exc}", max_attempts)
                == inbox.FAILED
            ):
                result.failed += 1
    entries, outcomes = apply_classified(conn, items, rules)
    audit_log.append(conn, entries)
    done.extend(outcomes)
    inbox.mark_done(conn, done)
    finished: dict[tuple[str, str], float] = {}
    for _, status, _ in done:
        key = counters.labelled(counters.EVENTS_METRIC, status=status)
        finished[key] = finished.get(key, 0) + 1
    if result.failed:
        finished[counters.labelled(counters.EVENTS_METRIC, status=inbox.FAILED)] = result.failed
    counters.add(conn, finished)
    result.audited = len(entries)
    for _, status, note in done:
        if status == inbox.PROCESSED:
            result.processed += 1
            result.outcomes[note] = result.outcomes.get(note, 0) + 1
        elif status == inbox.INVALID:
            result.invalid += 1
        else:
            result.ignored += 1
    return result


def drain(
    pool: ConnectionPool,
    *,
    batch_size: int,
    max_attempts: int,
    rules: Rules = Rules(),
    time_budget_seconds: float = 20.0,
    older_days: bool = False,
) -> BatchResult:
    """Apply pending events batch after batch until none are due or the budget is spent.
    Only the recent days' events unless ``older_days`` (the sweepers: inbox.claim_due).

    Each attempt is counted in a transaction of its own before the events are applied, so an
    attempt that ends with the process still counts. Events whose process died on them before
    are applied one per transaction, so a crash counts against the event that caused it
    only; when their attempts are used up they are set aside as failed. Connection errors
    propagate (the caller retries later). Any other error spoils a whole batch, so that batch
    is re-run one event per transaction to find the event at fault, which gets the failure
    recorded against it.
    """
    total = BatchResult()
    deadline = time.monotonic() + time_budget_seconds
    while True:
        if time.monotonic() >= deadline:
            total.out_of_time = True
            break
        with pool.connection() as conn:
            with conn.transaction():
                due = inbox.claim_due(conn, batch_size, older_days=older_days)
                worn_out = [e.pk for e in due if e.crashes and e.starts >= max_attempts]
                suspects = [e.pk for e in due if e.crashes and e.starts < max_attempts]
                batch = inbox.count_attempts(conn, [e.pk for e in due if not e.crashes])
                if worn_out:
                    set_aside = inbox.set_aside_crashed(conn, worn_out)
                    failed = counters.labelled(counters.EVENTS_METRIC, status=inbox.FAILED)
                    counters.add(conn, {failed: set_aside})
                    total.failed += set_aside
            if batch:
                _apply_batch(conn, batch, max_attempts, rules, total)
            for pk in suspects:
                with conn.transaction():
                    counted = inbox.count_attempts(conn, [pk])
                _apply_one_by_one(conn, counted, max_attempts, rules, total)
        if len(due) < batch_size:
            break
    return total


def _apply_batch(
    conn: psycopg.Connection,
    pks: Sequence[int],
    max_attempts: int,
    rules: Rules,
    total: BatchResult,
) -> None:
    try:
        with conn.transaction():
            total.add(apply_claimed(conn, inbox.claim_events(conn, pks), max_attempts, rules))
    except psycopg.OperationalError:
        raise
    except Exception:
        log.warning("a batch of %d events failed; applying them one by one", len(pks))
        _apply_one_by_one(conn, pks, max_attempts, rules, total)


def _apply_one_by_one(
    conn: psycopg.Connection,
    pks: Sequence[int],
    max_attempts: int,
    rules: Rules,
    total: BatchResult,
) -> None:
    for pk in pks:
        try:
            with conn.transaction():
                total.add(apply_claimed(conn, inbox.claim_events(conn, [pk]), max_attempts, rules))
        except psycopg.OperationalError:
            raise
        except Exception as exc:
            log.exception("event pk=%s failed", pk)
            with conn.transaction():
                status = inbox.record_failure(
                    conn, pk, f"{type(exc).__name__}: {exc}", max_attempts
                )
                if status == inbox.FAILED:
                    counters.add(
                        conn, {counters.labelled(counters.EVENTS_METRIC, status=inbox.FAILED): 1}
                    )
            total.failed += status == inbox.FAILED
