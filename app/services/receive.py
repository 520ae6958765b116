"""Record a verified webhook durably (spec §3): read its envelope, decide how it is kept, and
insert it into the inbox, committed before the caller answers Telnyx."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from app.consent import send_errors
from app.services import operations
from app.store import inbox, receipts
from app.telnyx.events import (
    MESSAGE_RECEIVED,
    SEND_REPORTS,
    InvalidPayload,
    parse_envelope,
    parse_inbound_message,
    parse_send_errors,
)


class DatabaseBusy(Exception):
    """A lock (a migration, say) or a slow statement outlasted the statement limits."""


class DatabaseUnavailable(Exception):
    """No connection to the database."""


@dataclass(frozen=True)
class Receipt:
    status: str  # inbox.EventStatus it is kept in: pending, ignored or invalid
    is_new: bool  # False: a redelivery of an event already kept
    problem: str | None = None  # why an invalid event cannot be processed

    @property
    def outcome(self) -> str:
        """What the receiver answers: accepted, duplicate, ignored or invalid."""
        if self.status == inbox.INVALID:
            return "invalid"
        if not self.is_new:
            return "duplicate"
        return "ignored" if self.status == inbox.IGNORED else "accepted"

    @property
    def to_apply(self) -> bool:
        """Whether a worker should look now. A duplicate asks too: its first delivery may
        be the try that raced a dropped connection, and asking costs only a flag."""
        return self.status == inbox.PENDING


def read_envelope(body: bytes) -> tuple[str | None, str | None, str, str | None]:
    """(event id, event type, status to keep it in, problem) of a verified body."""
    try:
        envelope = parse_envelope(body)
    except InvalidPayload as exc:
        return None, None, inbox.INVALID, str(exc)
    if envelope.event_type in SEND_REPORTS:
        # Most are receipts without an error: only one whose errors speak of consent waits
        # for the worker (spec §12).
        try:
            refused = send_errors.consent_events(parse_send_errors(envelope), None)
        except InvalidPayload as exc:
            return envelope.event_id, envelope.event_type, inbox.INVALID, str(exc)
        status = inbox.PENDING if refused else inbox.IGNORED
        return envelope.event_id, envelope.event_type, status, None
    if envelope.event_type != MESSAGE_RECEIVED:
        return envelope.event_id, envelope.event_type, inbox.IGNORED, None
    try:
        parse_inbound_message(envelope)
    except InvalidPayload as exc:
        return envelope.event_id, envelope.event_type, inbox.INVALID, str(exc)
    return envelope.event_id, envelope.event_type, inbox.PENDING, None


def delivery_of(body: bytes, signed_at: int) -> inbox.Delivery:
    """How a verified body is kept in the inbox."""
    event_id, event_type, status, problem = read_envelope(body)
    return inbox.Delivery(event_id, event_type, status, body, signed_at, problem)


def receipt_of(delivery: inbox.Delivery, is_new: bool) -> Receipt:
    return Receipt(delivery.status, is_new, delivery.error)


Outcome = bool | Exception  # new or not, or why this delivery could not be kept


def is_plain_receipt(delivery: inbox.Delivery) -> bool:
    """A delivery receipt without a consent-relevant error: kept compactly and briefly in
    delivery_receipts (RECEIPT_RETENTION_HOURS), not in the inbox."""
    return (
        delivery.status == inbox.IGNORED
        and delivery.event_type in SEND_REPORTS
        and delivery.event_id is not None
    )


def record_deliveries(
    pool: ConnectionPool, deliveries: Sequence[inbox.Delivery], pool_wait: float
) -> list[Outcome]:
    """Keep verified deliveries, committed, durably, when this returns: for each, whether it
    was new. Raises DatabaseBusy or DatabaseUnavailable when none can be kept; a delivery
    the database refuses on its own (a value it cannot store) gets its own error, and the
    others are kept one by one."""
    # Pooled connections may have been dropped by a database restart since their last use:
    # then the pool is checked and one more try made on a working connection. The insert is
    # idempotent by event id: a first try that did land makes the second report duplicates,
    # never second rows; deliveries without an id are not tried twice.
    tries = 2 if all(d.event_id is not None for d in deliveries) else 1
    for attempt in range(1, tries + 1):
        try:
            with pool.connection(timeout=pool_wait) as conn:
                return _keep(conn, deliveries)
        except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable) as exc:
            # Trying again would miss Telnyx's 2 s deadline: the callers answer now.
            raise DatabaseBusy(str(exc)) from exc
        except (psycopg.OperationalError, PoolTimeout) as exc:
            if attempt < tries and isinstance(exc, psycopg.OperationalError):
                pool.check()  # drop every idle connection that died with the first
                continue
            raise DatabaseUnavailable(str(exc)) from exc
    raise AssertionError("unreachable: the last try returns or raises")


Keep = Callable[[psycopg.Connection, Sequence[inbox.Delivery]], list[bool]]


def _keep(conn: psycopg.Connection, deliveries: Sequence[inbox.Delivery]) -> list[Outcome]:
    """Plain receipts to delivery_receipts, the rest to the inbox: on an autocommit
    connection, each statement is committed (durably) when it returns."""
    outcomes: list[Outcome] = [False] * len(deliveries)
    plain = [is_plain_receipt(d) for d in deliveries]
    for keep, receipts_only in ((_record_receipts, True), (inbox.record_events, False)):
        indexes = [i for i, is_plain in enumerate(plain) if is_plain is receipts_only]
        if indexes:
            kept = _each_alone_if_refused(conn, [deliveries[i] for i in indexes], keep)
            for index, outcome in zip(indexes, kept, strict=True):
                outcomes[index] = outcome
    return outcomes


def _each_alone_if_refused(
    conn: psycopg.Connection, deliveries: Sequence[inbox.Delivery], keep: Keep
) -> list[Outcome]:
    try:
        return list(_retried(conn, deliveries, keep))
    except psycopg.DataError:
        if len(deliveries) == 1:
            raise
    outcomes: list[Outcome] = []
    for delivery in deliveries:
        try:
            outcomes.extend(_retried(conn, [delivery], keep))
        except psycopg.DataError as exc:
            outcomes.append(exc)
    return outcomes


def _record_receipts(conn: psycopg.Connection, deliveries: Sequence[inbox.Delivery]) -> list[bool]:
    compact = [
        receipts.Receipt(d.event_id or "", d.event_type or "", d.signed_at) for d in deliveries
    ]
    return receipts.record(conn, compact)


def _retried(
    conn: psycopg.Connection, deliveries: Sequence[inbox.Delivery], keep: Keep
) -> list[bool]:
    """keep(), again if another process kept one of the same events in the meantime (it is
    now a duplicate) or today's partition is missing (beat is late: it is made here)."""
    for last in (False, False, True):
        try:
            return keep(conn, deliveries)
        except psycopg.errors.UniqueViolation:
            if last:
                raise
        except psycopg.errors.CheckViolation:
            if last:
                raise
            operations.ensure_partitions(conn)
    raise AssertionError("unreachable: the last try returns or raises")
