"""Outbound webhooks (spec §11): the organisation's endpoints, and delivering what the
outbox holds. The outbox row is written with its audit row (store.audit_log); here a
worker claims due rows with a lease, sends them concurrently, and settles each one."""

from __future__ import annotations

import secrets
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from psycopg_pool import ConnectionPool

from app.outbound import messages
from app.outbound.addresses import resolve
from app.outbound.sender import Answer, Sender
from app.services.exports import audit_select
from app.store import endpoints, outbox

# Longer than a batch of two rounds of timed-out attempts (2 × 10 s: claim at most twice
# as many webhooks as there are threads); a worker that dies mid-batch leaves its webhooks
# due again after this.
CLAIM_LEASE = timedelta(seconds=45)
_DATA_COLUMNS = audit_select()


class EndpointError(ValueError):
    """An endpoint cannot be added or found; the message says why."""


@dataclass(frozen=True)
class NewEndpoint:
    id: str
    secret: str


def add_endpoint(
    conn: psycopg.Connection,
    url: str,
    event_types: Sequence[str] | None,
    profile: str | None,
    allow_private: bool,
) -> NewEndpoint:
    """Check the URL (https, a public address) and the types, then keep the endpoint."""
    resolve(url, allow_private)  # UnsafeUrl, a ValueError, says what is wrong
    unknown = sorted(set(event_types or ()) - set(messages.EVENT_TYPES))
    if unknown:
        choices = ", ".join(messages.EVENT_TYPES)
        raise EndpointError(f"unknown event type {', '.join(unknown)}; choose from {choices}")
    endpoint = NewEndpoint("ep_" + secrets.token_hex(8), messages.new_secret())
    types = sorted(set(event_types)) if event_types else None
    endpoints.add(conn, endpoint.id, url, endpoint.secret, types, profile)
    return endpoint


def list_endpoints(conn: psycopg.Connection) -> list[dict[str, Any]]:
    return endpoints.all_endpoints(conn)


def remove_endpoint(conn: psycopg.Connection, endpoint_id: str) -> None:
    if not endpoints.remove(conn, endpoint_id):
        raise EndpointError(f"no endpoint {endpoint_id}")


def attempts(conn: psycopg.Connection, endpoint_id: str, limit: int = 50) -> list[dict[str, Any]]:
    _require(conn, endpoint_id)
    return outbox.attempts_of(conn, endpoint_id, limit)


def replay(conn: psycopg.Connection, endpoint_id: str, since: datetime) -> int:
    """Deliver again everything the endpoint was sent (or would have been) since ``since``."""
    _require(conn, endpoint_id)
    return outbox.replay(conn, endpoint_id, since)


def _require(conn: psycopg.Connection, endpoint_id: str) -> dict[str, Any]:
    endpoint = endpoints.get(conn, endpoint_id)
    if endpoint is None:
        raise EndpointError(f"no endpoint {endpoint_id}")
    return endpoint


def send_ping(conn: psycopg.Connection, endpoint_id: str, sender: Sender) -> Answer:
    """Send a ``ping`` webhook now and return the receiver's answer (nothing is kept)."""
    endpoint = _require(conn, endpoint_id)
    now = datetime.now(UTC)
    body = orjson.dumps(
        {"type": messages.PING, "timestamp": now.isoformat(), "data": {"endpoint_id": endpoint_id}}
    )
    message_id = f"msg_ping_{uuid.uuid4().hex}"
    return sender.post(
        endpoint["url"],
        messages.headers(endpoint["secret"], message_id, int(now.timestamp()), body),
        body,
    )


@dataclass(frozen=True)
class DeliveryRun:
    outcomes: Counter[str]  # by messages.Decision.outcome

    @property
    def attempted(self) -> int:
        return self.outcomes.total()


def deliver_due(
    pool: ConnectionPool, sender: Sender, executor: Executor, batch: int
) -> DeliveryRun:
    """Claim up to ``batch`` due webhooks (committed, leased), send them on ``executor``'s
    threads, and settle them in one transaction."""
    with pool.connection() as conn, conn.transaction():
        claimed = outbox.claim_due(conn, batch, CLAIM_LEASE, _DATA_COLUMNS)
    if not claimed:
        return DeliveryRun(Counter())
    answers = list(executor.map(lambda delivery: _send(sender, delivery), claimed))
    settled = []
    for delivery, answer in zip(claimed, answers, strict=True):
        decision = messages.decide(delivery.attempts, answer.status)
        settled.append(
            outbox.Attempt(
                delivery.outbox_id,
                delivery.endpoint_id,
                answer.status,
                answer.error,
                answer.seconds,
                decision.outcome,
                decision.retry_after,
            )
        )
    with pool.connection() as conn, conn.transaction():
        outbox.record(conn, settled)
    return DeliveryRun(Counter(attempt.outcome for attempt in settled))


def _send(sender: Sender, delivery: outbox.Delivery) -> Answer:
    message_id = messages.webhook_id(delivery.endpoint_id, delivery.audit_seq)
    headers = messages.headers(delivery.secret, message_id, int(time.time()), delivery.body)
    return sender.post(delivery.url, headers, delivery.body)


def deliver_all_due(
    pool: ConnectionPool,
    sender: Sender,
    executor: Executor,
    batch: int,
    time_budget: float,
) -> tuple[Counter[str], bool]:
    """Deliver batches until nothing is due or ``time_budget`` seconds have passed; return
    the outcomes and whether it stopped for time (more may be due)."""
    deadline = time.monotonic() + time_budget
    total: Counter[str] = Counter()
    while True:
        run = deliver_due(pool, sender, executor, batch)
        total.update(run.outcomes)
        if not run.attempted:
            return total, False
        if time.monotonic() > deadline:
            return total, True
