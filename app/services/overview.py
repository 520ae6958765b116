"""What the console's overview shows (spec §14): where consent stands and what needs a
person, each figure from one indexed or small query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg

from app.consent.values import Action
from app.store import audit_log, counters, endpoints, inbox, operator_actions, subscribers

CHART_DAYS = 30
OPT_OUT_ACTIONS = (Action.OPT_OUT, Action.REVIEW_CONFIRMED)
# The FCC allows 10 business days to honour an opt-out. The histogram's last finite bound is
# 10 calendar days, never more than 10 business days: under it is certainly within the limit.
HONOUR_BOUND_SECONDS = counters.HONORED_BUCKETS[-1]


@dataclass(frozen=True)
class TimeToHonour:
    p50: float | None  # seconds, estimated from the histogram's buckets
    p99: float | None
    count: int
    over_bound: int  # took longer than HONOUR_BOUND_SECONDS


@dataclass(frozen=True)
class Overview:
    subscribers: dict[str, int]  # by status
    subscribers_estimated: bool  # from table statistics: counting would be too slow
    pending_reviews: int
    failed_events: int
    invalid_events: int
    drift: int
    failing_endpoints: int
    chain_head: tuple[int, str, datetime] | None  # seq, hash, recorded_at of the last row
    chain_check: audit_log.ChainCheck | None  # the latest `audit verify`
    opt_outs_per_day: list[tuple[date, int]]  # the last CHART_DAYS UTC days, today last
    time_to_honour: TimeToHonour
    recent_actions: list[dict[str, Any]]


def time_to_honour(conn: psycopg.Connection) -> TimeToHonour:
    buckets, count = counters.honored(conn)
    within = next((n for bound, n in buckets if bound == HONOUR_BOUND_SECONDS), 0.0)
    return TimeToHonour(
        counters.quantile(buckets, 0.5),
        counters.quantile(buckets, 0.99),
        int(count),
        int(count - within),
    )


def overview(conn: psycopg.Connection) -> Overview:
    by_status, estimated = subscribers.status_counts(conn)
    events = inbox.count_problems(conn)
    return Overview(
        subscribers=by_status,
        subscribers_estimated=estimated,
        pending_reviews=by_status.get("review", 0),
        failed_events=events.get(inbox.FAILED, 0),
        invalid_events=events.get(inbox.INVALID, 0),
        drift=audit_log.drift_count(conn),
        failing_endpoints=endpoints.failing_count(conn),
        chain_head=audit_log.head(conn),
        chain_check=audit_log.last_check(conn),
        opt_outs_per_day=audit_log.per_day(conn, OPT_OUT_ACTIONS, CHART_DAYS),
        time_to_honour=time_to_honour(conn),
        recent_actions=operator_actions.recent(conn),
    )
