"""The metric_counters table: exact counters written by the worker, read by /metrics."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate

import psycopg

HONORED_METRIC = "optout_sync_honored_seconds"
AUDIT_ROWS_METRIC = "optout_sync_audit_rows_total"
EVENTS_METRIC = "optout_sync_events_total"
SWEEPER_METRIC = "optout_sync_sweeper_applied_total"
RECONCILE_METRIC = "optout_sync_reconcile_total"
DELIVERIES_METRIC = "optout_sync_deliveries_total"
DRIFT_METRIC = "optout_sync_drift_total"
# Seconds from receiving a webhook to applying it. The FCC allows 10 business days; the
# buckets reach that far but are dense where this service should live: under a second.
HONORED_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    3600.0,
    86400.0,
    864000.0,
)

_HELP = {
    HONORED_METRIC: ("histogram", "Time from receiving a consent event to applying it."),
    AUDIT_ROWS_METRIC: ("counter", "Audit rows appended, by action and source."),
    EVENTS_METRIC: ("counter", "Inbox events finished by the worker, by status."),
    SWEEPER_METRIC: ("counter", "Events applied by a sweeper rather than by their own task."),
    RECONCILE_METRIC: ("counter", "Opt-outs read from Telnyx's list, by result."),
    DRIFT_METRIC: (
        "counter",
        "Opt-outs learnt from Telnyx that we did not hold (drift), by source.",
    ),
    DELIVERIES_METRIC: (
        "counter",
        "Outbound webhook attempts, by outcome (delivered, retrying, failed, gone).",
    ),
}


def labelled(metric: str, **labels: str) -> tuple[str, str]:
    return metric, ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))


def _le(bound: float) -> str:
    return f'le="{bound:g}"'


Increments = dict[tuple[str, str], float]


_HONORED_BUCKET_KEYS = [(HONORED_METRIC + "_bucket", _le(bound)) for bound in HONORED_BUCKETS]
_HONORED_BUCKET_KEYS.append((HONORED_METRIC + "_bucket", 'le="+Inf"'))


def honored_increments(seconds: Iterable[float]) -> Increments:
    """Cumulative histogram increments (bucket, _sum, _count) for some observations."""
    # How many observations fall in each bucket alone, then summed into Prometheus's
    # cumulative buckets: one bisect per observation instead of one test per bucket.
    alone = [0] * len(_HONORED_BUCKET_KEYS)
    total = 0.0
    for value in seconds:
        alone[bisect_left(HONORED_BUCKETS, value)] += 1
        total += value
    count = sum(alone)
    increments: Increments = defaultdict(float)
    if count:
        for key, cumulative in zip(_HONORED_BUCKET_KEYS, accumulate(alone), strict=True):
            if cumulative:
                increments[key] += cumulative
        increments[(HONORED_METRIC + "_sum", "")] += total
        increments[(HONORED_METRIC + "_count", "")] += count
    return increments


def add(conn: psycopg.Connection, increments: Mapping[tuple[str, str], float]) -> None:
    """Add to counters inside the caller's transaction (keys in order: no deadlocks)."""
    if not increments:
        return
    keys = sorted(increments)
    conn.execute(
        "INSERT INTO metric_counters (metric, labels, value)"
        " SELECT * FROM unnest(%b::text[], %b::text[], %b::float8[])"
        " ON CONFLICT (metric, labels)"
        " DO UPDATE SET value = metric_counters.value + excluded.value",
        ([k[0] for k in keys], [k[1] for k in keys], [float(increments[k]) for k in keys]),
    )


def exposition(conn: psycopg.Connection) -> str:
    """Prometheus text for every counter in the table."""
    rows = conn.execute("SELECT metric, labels, value FROM metric_counters").fetchall()
    by_family: dict[str, list[tuple[str, str, float]]] = {}
    for metric, labels, value in rows:
        family = next((f for f in _HELP if metric.startswith(f)), metric)
        by_family.setdefault(family, []).append((metric, labels, value))
    lines = []
    for family, samples in sorted(by_family.items()):
        kind, text = _HELP.get(family, ("untyped", family))
        lines += [f"# HELP {family} {text}", f"# TYPE {family} {kind}"]
        samples.sort(key=lambda s: (s[0], _bucket_order(s[1])))
        lines += [
            f"{m}{{{labels}}} {value:g}" if labels else f"{m} {value:g}"
            for m, labels, value in samples
        ]
    return "\n".join(lines) + ("\n" if lines else "")


def _bucket_order(labels: str) -> float:
    if labels.startswith('le="'):
        bound = labels[4:-1]
        return float("inf") if bound == "+Inf" else float(bound)
    return 0.0


def quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """The q-quantile estimated from cumulative (upper bound, count) buckets, +Inf last, the
    way Prometheus's histogram_quantile does it: linear within the bucket it falls in."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound  # beyond the last finite bound: that bound is all we know
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


def honored(conn: psycopg.Connection) -> tuple[list[tuple[float, float]], float]:
    """The time-to-honour histogram as cumulative (upper bound, count), +Inf last, and its
    count."""
    rows: dict[str, float] = dict(
        conn.execute(
            "SELECT labels, value FROM metric_counters WHERE metric = %s",
            (HONORED_METRIC + "_bucket",),
        ).fetchall()
    )
    bounds = [*HONORED_BUCKETS, float("inf")]
    cumulative = [rows.get(label, 0.0) for _, label in _HONORED_BUCKET_KEYS]
    # A bucket never written (no observation reached it yet) holds the one below it.
    cumulative = list(accumulate(cumulative, max))
    return list(zip(bounds, cumulative, strict=True)), cumulative[-1]
