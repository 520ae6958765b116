"""What the console's overview shows (spec §14): where consent stands and what needs a
person, each figure from one indexed or small query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from app.store import audit_log, endpoints, inbox, subscribers


@dataclass(frozen=True)
class Overview:
    subscribers: dict[str, int]  # by status
    pending_reviews: int
    failed_events: int
    invalid_events: int
    drift: int
    failing_endpoints: int
    chain_head: tuple[int, str, datetime] | None  # seq, hash, recorded_at of the last row


def overview(conn: psycopg.Connection) -> Overview:
    by_status = subscribers.count_by_status(conn)
    events = inbox.count_problems(conn)
    return Overview(
        subscribers=by_status,
        pending_reviews=by_status.get("review", 0),
        failed_events=events.get(inbox.FAILED, 0),
        invalid_events=events.get(inbox.INVALID, 0),
        drift=audit_log.drift_count(conn),
        failing_endpoints=endpoints.failing_count(conn),
        chain_head=audit_log.head(conn),
    )
