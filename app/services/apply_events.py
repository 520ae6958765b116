"""Bring subscribers, carrier blocks and the audit log into step with inbox events.

Pure of Flask and Celery: everything here takes a psycopg connection (or pool). The rules
(spec §5): consent is per (messaging profile, number); a STOP/START to a toll-free number
also sets/lifts a carrier block per (toll-free number, subscriber); per key, the last event
by (occurred_at, event id) wins and a late older event is audited as superseded.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from app.consent.intent import PER_SE
from app.consent.keyword_configs import KeywordEngine
from app.consent.keywords import HELP, POSSIBLE_OPT_OUT, START, STOP, Verdict
from app.consent.phones import country_of, is_toll_free
from app.store import audit_log, counters, inbox
from app.store.audit_log import AuditEntry
from app.store.inbox import ClaimedEvent
from app.telnyx.events import (
    MESSAGE_RECEIVED,
    InboundMessage,
    InvalidPayload,
    parse_envelope,
    parse_inbound_message,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

CONSENT_FOR_OP = {STOP: "opted_out", START: "opted_in"}
ACTION_FOR_OP = {
    STOP: "opt_out",
    START: "opt_in",
    HELP: "help",
    POSSIBLE_OPT_OUT: "possible_opt_out",
}
CARRIER_ACTION = {True: "carrier_block", False: "carrier_unblock"}

# Events sort by (occurred_at, event id); a key never touched sorts below every event.
OrderKey = tuple[datetime, str]
_NEVER: OrderKey = (datetime.min.replace(tzinfo=UTC), "")


def _is_newer(candidate: OrderKey, current: OrderKey | None) -> bool:
    return current is None or candidate > current


@dataclass(frozen=True)
class Rules:
    """What the worker needs to decide: the keyword engine and the possible-opt-out policy."""

    engine: KeywordEngine = field(default_factory=KeywordEngine)
    possible_opt_out_policy: str = "review"  # review | opt_out | ignore


@dataclass
class SubscriberState:
    consent: str  # unknown | opted_in | opted_out: the last STOP/START
    last: OrderKey | None  # order of the event that set consent
    review_state: str | None = None  # pending | confirmed | dismissed
    review_last: OrderKey | None = None  # order of the last possible opt-out
    changed: bool = False
    new: bool = False  # no row yet: save_subscribers inserts it

    @property
    def status(self) -> str:
        """Effective status: an opt-out beats everything; a pending review newer than the
        last STOP/START holds the number; otherwise the consent register."""
        if self.consent == "opted_out":
            return "opted_out"
        if self.review_state == "pending" and _is_newer(self.review_last or _NEVER, self.last):
            return "review"
        return self.consent


@dataclass
class CarrierBlockState:
    blocked: bool
    since: datetime | None
    last: OrderKey | None
    profile: str | None
    changed: bool = False
    new: bool = False  # no row yet: _save_carrier_blocks inserts it


@dataclass(frozen=True)
class Classified:
    event: ClaimedEvent
    message: InboundMessage
    verdict: Verdict

    @property
    def order(self) -> OrderKey:
        return (self.message.occurred_at, self.message.event_id)


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


# --- state rows, locked in key order so concurrent batches never deadlock -------------------
# Existing rows are locked (FOR UPDATE) and read; keys without a row get a fresh state that is
# inserted, with its final values, when saved. Should another transaction insert one of those
# keys first, saving raises KeyTaken and the caller applies again (see retry_on_key_taken).
# Arrays travel in binary (%b): psycopg's text array dumper costs microseconds per element.


class KeyTaken(Exception):
    """A key this transaction meant to insert was inserted by another one meanwhile."""


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


@contextmanager
def _key_taken_on_conflict() -> Iterator[None]:
    # A plain INSERT costs about half an INSERT … ON CONFLICT, and a conflict is rare: the
    # rows were looked up under lock just before.
    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        raise KeyTaken(str(exc)) from exc


def lock_subscribers(
    conn: psycopg.Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], SubscriberState]:
    ordered = sorted(set(keys))
    if not ordered:
        return {}
    rows = conn.execute(
        "SELECT s.messaging_profile_id, s.phone_number, s.consent_status, s.last_occurred_at,"
        "  s.last_event_id, s.review_state, s.review_occurred_at, s.review_event_id"
        " FROM subscribers s"
        " JOIN unnest(%b::text[], %b::text[]) AS k(p, n)"
        "   ON s.messaging_profile_id = k.p AND s.phone_number = k.n"
        " ORDER BY s.messaging_profile_id, s.phone_number FOR UPDATE OF s",
        ([k[0] for k in ordered], [k[1] for k in ordered]),
    ).fetchall()
    states = {
        (p, n): SubscriberState(
            consent,
            (occ, eid) if occ is not None else None,
            review_state,
            (review_occ, review_eid) if review_occ is not None else None,
        )
        for p, n, consent, occ, eid, review_state, review_occ, review_eid in rows
    }
    # A number that texts a keyword has been seen: it gets a row, 'unknown' until a STOP/START.
    for key in ordered:
        if key not in states:
            states[key] = SubscriberState("unknown", None, new=True)
    return states


def lock_carrier_blocks(
    conn: psycopg.Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], CarrierBlockState]:
    ordered = sorted(set(keys))
    if not ordered:
        return {}
    rows = conn.execute(
        "SELECT c.toll_free_number, c.phone_number, c.blocked, c.since, c.last_occurred_at,"
        "  c.last_event_id, c.messaging_profile_id FROM carrier_blocks c"
        " JOIN unnest(%b::text[], %b::text[]) AS k(t, n)"
        "   ON c.toll_free_number = k.t AND c.phone_number = k.n"
        " ORDER BY c.toll_free_number, c.phone_number FOR UPDATE OF c",
        ([k[0] for k in ordered], [k[1] for k in ordered]),
    ).fetchall()
    states = {
        (t, n): CarrierBlockState(blocked, since, (occ, eid), profile)
        for t, n, blocked, since, occ, eid, profile in rows
    }
    for key in ordered:
        if key not in states:
            states[key] = CarrierBlockState(blocked=False, since=None, last=None, profile=None,
                                            new=True)  # fmt: skip
    return states


def _by_key(item: tuple[tuple[str, str], object]) -> tuple[str, str]:
    return item[0]  # rows are written in key order, as they were locked


_SUBSCRIBER_VALUES = (
    "unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::timestamptz[], %b::text[],"
    " %b::text[], %b::timestamptz[], %b::text[])"
    " AS u(p, n, status, consent, occ, eid, review_state, review_occ, review_eid)"
)


def _subscriber_columns(
    states: list[tuple[tuple[str, str], SubscriberState]],
) -> tuple[list[Any], ...]:
    return (
        [k[0] for k, _ in states],
        [k[1] for k, _ in states],
        [s.status for _, s in states],
        [s.consent for _, s in states],
        [s.last[0] if s.last else None for _, s in states],
        [s.last[1] if s.last else None for _, s in states],
        [s.review_state for _, s in states],
        [s.review_last[0] if s.review_last else None for _, s in states],
        [s.review_last[1] if s.review_last else None for _, s in states],
    )


def save_subscribers(
    conn: psycopg.Connection, states: dict[tuple[str, str], SubscriberState]
) -> None:
    """Update changed rows and insert new ones; KeyTaken if a new key is no longer free."""
    changed = sorted(((k, s) for k, s in states.items() if s.changed and not s.new), key=_by_key)
    if changed:
        conn.execute(
            "UPDATE subscribers AS s SET status = u.status, consent_status = u.consent,"
            "  last_occurred_at = u.occ, last_event_id = u.eid, review_state = u.review_state,"
            "  review_occurred_at = u.review_occ, review_event_id = u.review_eid,"
            "  updated_at = clock_timestamp()"
            f" FROM {_SUBSCRIBER_VALUES}"
            " WHERE s.messaging_profile_id = u.p AND s.phone_number = u.n",
            _subscriber_columns(changed),
        )
    new = sorted(((k, s) for k, s in states.items() if s.new), key=_by_key)
    if new:
        with _key_taken_on_conflict():
            conn.execute(
                "INSERT INTO subscribers (messaging_profile_id, phone_number, status,"
                "  consent_status, last_occurred_at, last_event_id, review_state,"
                "  review_occurred_at, review_event_id, updated_at)"
                f" SELECT u.*, clock_timestamp() FROM {_SUBSCRIBER_VALUES} ORDER BY p, n",
                _subscriber_columns(new),
            )
        for _, state in new:
            state.new = False


def _save_carrier_blocks(
    conn: psycopg.Connection, states: dict[tuple[str, str], CarrierBlockState]
) -> None:
    # A new key is always changed: no event can be older than a key never touched.
    changed = sorted(
        ((k, s) for k, s in states.items() if s.changed and s.last and s.since), key=_by_key
    )
    if not changed:
        return
    columns = (
        [k[0] for k, _ in changed],
        [k[1] for k, _ in changed],
        [s.blocked for _, s in changed],
        [s.since for _, s in changed],
        [s.last[0] for _, s in changed if s.last],
        [s.last[1] for _, s in changed if s.last],
        [s.profile for _, s in changed],
        [s.new for _, s in changed],
    )
    values = (
        "unnest(%b::text[], %b::text[], %b::boolean[], %b::timestamptz[], %b::timestamptz[],"
        " %b::text[], %b::text[], %b::boolean[]) AS u(t, n, blocked, since, occ, eid, profile, new)"
    )
    conn.execute(
        "UPDATE carrier_blocks AS c SET blocked = u.blocked, since = u.since,"
        "  last_occurred_at = u.occ, last_event_id = u.eid, messaging_profile_id = u.profile,"
        "  updated_at = clock_timestamp()"
        f" FROM {values} WHERE NOT u.new AND c.toll_free_number = u.t AND c.phone_number = u.n",
        columns,
    )
    if any(s.new for _, s in changed):
        with _key_taken_on_conflict():
            conn.execute(
                "INSERT INTO carrier_blocks (toll_free_number, phone_number, blocked, since,"
                "  last_occurred_at, last_event_id, messaging_profile_id, updated_at)"
                " SELECT t, n, blocked, since, occ, eid, profile, clock_timestamp()"
                f" FROM {values} WHERE u.new ORDER BY t, n",
                columns,
            )
        for _, state in changed:
            state.new = False


# --- the rules ---------------------------------------------------------------------------------


# PostgreSQL text holds neither NUL nor a lone UTF-16 surrogate (half an emoji, which JSON
# can escape); they become U+FFFD, and the raw body in the inbox keeps the original bytes.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(text: str) -> str:
    return _UNSTORABLE.sub("\ufffd", text)


def _entry(item: Classified, **fields: object) -> AuditEntry:
    message = item.message
    return AuditEntry(
        event_id=message.event_id,
        message_id=message.message_id,
        occurred_at=message.occurred_at,
        received_at=item.event.received_at,
        messaging_profile_id=message.messaging_profile_id,
        phone_number=message.subscriber_number,
        our_number=message.our_number,
        country=country_of(message.subscriber_number),
        text=_storable(message.text),
        autoresponse_type=message.autoresponse_type,
        telnyx_block=item.verdict.source == "telnyx" and item.verdict.op == STOP,
        **fields,  # type: ignore[arg-type]
    )


def effective_op(verdict: Verdict, policy: str) -> str | None:
    """The op a verdict acts as: a possible opt-out under policy opt_out is a stop."""
    if verdict.op == POSSIBLE_OPT_OUT and policy == "opt_out":
        return STOP
    return verdict.op


ORDINARY = "ordinary"  # the inbox outcome of a text that changes nothing


def action_of(verdict: Verdict, policy: str) -> str:
    """What a verdict becomes under a policy: its audit action, or ``ordinary``."""
    op = effective_op(verdict, policy)
    if op is None or (op == POSSIBLE_OPT_OUT and policy == "ignore"):
        return ORDINARY
    return ACTION_FOR_OP.get(op, "custom")


def apply_to_subscriber(item: Classified, state: SubscriberState, policy: str) -> AuditEntry:
    """Apply one consent event to its subscriber state (in place) and describe it."""
    op = effective_op(item.verdict, policy)
    assert op is not None and item.verdict.source is not None
    previous = state.status
    superseded = False
    if op in CONSENT_FOR_OP:
        if _is_newer(item.order, state.last):
            state.consent, state.last, state.changed = CONSENT_FOR_OP[op], item.order, True
        else:
            superseded = True
    elif op == POSSIBLE_OPT_OUT and policy == "review":
        if _is_newer(item.order, state.review_last):
            state.review_state, state.review_last, state.changed = "pending", item.order, True
        else:
            superseded = True
    return _entry(
        item,
        action=action_of(item.verdict, policy),
        source=item.verdict.source,
        previous_status=previous,
        new_status=state.status,
        superseded=superseded,
    )


def apply_to_carrier_block(item: Classified, state: CarrierBlockState) -> AuditEntry:
    blocked = item.verdict.op == STOP
    previous = state.blocked
    superseded = not _is_newer(item.order, state.last)
    if not superseded:
        if blocked != state.blocked or state.since is None:
            state.since = item.message.occurred_at
        state.blocked, state.last = blocked, item.order
        state.profile, state.changed = item.message.messaging_profile_id, True
    return _entry(
        item,
        action=CARRIER_ACTION[blocked],
        source=item.verdict.source or "keyword",
        previous_status="blocked" if previous else "unblocked",
        new_status="blocked" if state.blocked else "unblocked",
        superseded=superseded,
    )


def _carrier_key(item: Classified) -> tuple[str, str] | None:
    # Carriers act on keywords: a per-se word among fillers ("STOP NOW") is ours to read.
    if (
        item.verdict.op in (STOP, START)
        and item.verdict.rule != PER_SE
        and is_toll_free(item.message.our_number)
    ):
        return (item.message.our_number, item.message.subscriber_number)
    return None


def apply_classified(
    conn: psycopg.Connection, items: Sequence[Classified], rules: Rules
) -> tuple[list[AuditEntry], list[tuple[int, str, str]]]:
    """Apply consent events; return their audit entries and inbox outcomes."""
    ordinary = [(i.event.pk, "processed", ORDINARY) for i in items if i.verdict.op is None]
    consent = [item for item in items if item.verdict.op is not None]
    if not consent:
        return [], ordinary
    entries, outcomes = retry_on_key_taken(conn, lambda: _apply_consent(conn, consent, rules))
    return entries, ordinary + outcomes


def _apply_consent(
    conn: psycopg.Connection, consent: Sequence[Classified], rules: Rules
) -> tuple[list[AuditEntry], list[tuple[int, str, str]]]:
    subscribers = lock_subscribers(
        conn, ((i.message.messaging_profile_id, i.message.subscriber_number) for i in consent)
    )
    carrier_keys = {item.event.pk: _carrier_key(item) for item in consent}
    blocks = lock_carrier_blocks(conn, (k for k in carrier_keys.values() if k))
    entries: list[AuditEntry] = []
    outcomes: list[tuple[int, str, str]] = []
    # Oldest first, so the audit trail of one batch reads in the order things happened.
    for item in sorted(consent, key=lambda i: i.order):
        key = (item.message.messaging_profile_id, item.message.subscriber_number)
        entry = apply_to_subscriber(item, subscribers[key], rules.possible_opt_out_policy)
        entries.append(entry)
        notes = [("superseded " if entry.superseded else "") + entry.action]
        carrier_key = carrier_keys[item.event.pk]
        if carrier_key:
            carrier_entry = apply_to_carrier_block(item, blocks[carrier_key])
            entries.append(carrier_entry)
            notes.append(("superseded " if carrier_entry.superseded else "") + carrier_entry.action)
        outcomes.append((item.event.pk, "processed", ", ".join(notes)))
    save_subscribers(conn, subscribers)
    _save_carrier_blocks(conn, blocks)
    return entries, outcomes


def apply_claimed(
    conn: psycopg.Connection,
    claimed: Sequence[ClaimedEvent],
    max_attempts: int,
    rules: Rules = Rules(),
) -> BatchResult:
    """Classify and apply claimed events inside the caller's transaction."""
    result = BatchResult(claimed=len(claimed))
    done: list[tuple[int, str, str]] = []
    items: list[Classified] = []
    for event in claimed:
        try:
            envelope = parse_envelope(event.raw_body)
            if envelope.event_type != MESSAGE_RECEIVED:
                done.append((event.pk, "ignored", envelope.event_type))
                continue
            message = parse_inbound_message(envelope)
            verdict = rules.engine.classify(
                message.text,
                message.autoresponse_type,
                message.messaging_profile_id,
                country_of(message.subscriber_number),
            )
            if verdict.op == POSSIBLE_OPT_OUT and rules.possible_opt_out_policy == "ignore":
                # Kept in the inbox as an ordinary message: policy says intent changes nothing.
                verdict = Verdict(None, None, None, verdict.normalized, "intent ignored by policy")
            items.append(Classified(event, message, verdict))
        except InvalidPayload as exc:
            done.append((event.pk, "invalid", str(exc)))
        except Exception as exc:  # a poison event: count the attempt, never block the others
            log.exception("event %s could not be classified", event.event_id)
            if (
                inbox.record_failure(conn, event.pk, f"{type(exc).__name__}: {exc}", max_attempts)
                == "failed"
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
        finished[counters.labelled(counters.EVENTS_METRIC, status="failed")] = result.failed
    counters.add(conn, finished)
    result.audited = len(entries)
    for _, status, note in done:
        if status == "processed":
            result.processed += 1
            result.outcomes[note] = result.outcomes.get(note, 0) + 1
        elif status == "invalid":
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
) -> BatchResult:
    """Apply pending events batch after batch until none are due or the budget is spent.

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
                due = inbox.claim_due(conn, batch_size)
                worn_out = [e.pk for e in due if e.crashes and e.starts >= max_attempts]
                suspects = [e.pk for e in due if e.crashes and e.starts < max_attempts]
                batch = inbox.count_attempts(conn, [e.pk for e in due if not e.crashes])
                if worn_out:
                    set_aside = inbox.set_aside_crashed(conn, worn_out)
                    counters.add(conn, {counters.labelled(counters.EVENTS_METRIC,
                                                          status="failed"): set_aside})  # fmt: skip
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
                if status == "failed":
                    counters.add(
                        conn, {counters.labelled(counters.EVENTS_METRIC, status="failed"): 1}
                    )
            total.failed += status == "failed"
