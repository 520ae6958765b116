"""The audit_log table: append-only rows chained by SHA-256 (consent.audit_chain).

``seq`` is gap-free: it is assigned under a transaction-scoped advisory lock together with
the chain, so concurrent workers append one after the other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from app.consent.audit_chain import (
    CHAINED_FIELDS,
    GENESIS_HASH,
    AuditEntry,
    ChainBreak,
    ChainHead,
    ChainReport,
    canonical_time,
    entry_values,
    row_hash,
    verify_rows,
)
from app.consent.rules import is_drift
from app.consent.values import DRIFT_SOURCES, Action, Source, Status
from app.store import counters, outbox

AUDIT_CHAIN_LOCK_KEY = 0x6F7074_617564  # "opt" "aud"


# Rows go in binary: neither side formats or parses text (timestamps above all).
_COPY_ROWS = (
    f"COPY audit_log ({', '.join((*CHAINED_FIELDS, 'prev_hash', 'hash'))}) FROM STDIN"
    " (FORMAT BINARY)"
)
_COPY_TYPES = [
    {"seq": "int8", "superseded": "bool", "telnyx_block": "bool"}.get(
        name, "timestamptz" if name.endswith("_at") else "text"
    )
    for name in (*CHAINED_FIELDS, "prev_hash", "hash")
]


def append(conn: psycopg.Connection, entries: Sequence[AuditEntry]) -> list[int]:
    """Append entries to the chain inside the caller's transaction; return their seqs.

    Also counts them (by action and source, and their time to honour) in metric_counters,
    under the same lock, so /metrics never disagrees with the log.
    """
    if not entries:
        return []
    # Held until the caller commits: the chain has one writer at a time.
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_CHAIN_LOCK_KEY,))
    row = conn.execute(
        "SELECT seq, hash, clock_timestamp() FROM audit_log ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    if row is None:
        last_seq, prev_hash = 0, GENESIS_HASH
        recorded_at = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
    else:
        last_seq, prev_hash, recorded_at = row
    seqs = []
    # The time every row of this append shares, in the chain's form, computed once.
    recorded_canonical = canonical_time(recorded_at)
    with conn.cursor().copy(_COPY_ROWS) as copy:
        copy.set_types(_COPY_TYPES)
        for offset, entry in enumerate(entries, start=1):
            seq = last_seq + offset
            values = entry_values(entry)
            digest = row_hash(prev_hash, (seq, recorded_canonical, *values))
            copy.write_row((seq, recorded_at, *values, prev_hash, digest))
            prev_hash = digest
            seqs.append(seq)
    counters.add(conn, _counts(entries, recorded_at))
    _count_day(conn, entries, recorded_at)
    # In the same transaction: a committed audit row is always announced (spec §11).
    outbox.enqueue(conn, seqs[0], seqs[-1])
    return seqs


def _counts(entries: Sequence[AuditEntry], recorded_at: datetime) -> counters.Increments:
    increments = counters.honored_increments(
        (recorded_at - e.received_at).total_seconds()
        for e in entries
        if e.received_at is not None and e.source != Source.OPERATOR
    )
    for entry in entries:
        labels = f'action="{entry.action}",source="{entry.source}"'
        increments[(counters.AUDIT_ROWS_METRIC, labels)] += 1
        if is_drift(entry):
            increments[(counters.DRIFT_METRIC, f'source="{entry.source}"')] += 1
    return increments


def _count_day(
    conn: psycopg.Connection, entries: Sequence[AuditEntry], recorded_at: datetime
) -> None:
    """Add the rows that changed something to audit_daily (the overview's chart)."""
    by_action = Counter(str(e.action) for e in entries if not e.superseded)
    if by_action:
        actions = sorted(by_action)
        conn.execute(
            "INSERT INTO audit_daily (day, action, rows)"
            " SELECT (%s::timestamptz AT TIME ZONE 'UTC')::date, a, n"
            " FROM unnest(%s::text[], %s::int8[]) AS t(a, n)"
            " ON CONFLICT (day, action) DO UPDATE SET rows = audit_daily.rows + excluded.rows",
            (recorded_at, actions, [by_action[a] for a in actions]),
        )


def per_day(conn: psycopg.Connection, actions: Sequence[str], days: int) -> list[tuple[date, int]]:
    """Rows of ``actions`` on each of the last ``days`` UTC days, today last, zeros included."""
    rows = conn.execute(
        "SELECT d::date, coalesce(sum(a.rows), 0)::int8"
        " FROM generate_series((now() AT TIME ZONE 'UTC')::date - (%s - 1),"
        "   (now() AT TIME ZONE 'UTC')::date, interval '1 day') AS d"
        " LEFT JOIN audit_daily a ON a.day = d::date AND a.action = ANY(%s)"
        " GROUP BY d ORDER BY d",
        (days, list(actions)),
    ).fetchall()
    return [(day, int(count)) for day, count in rows]


def record_check(conn: psycopg.Connection, report: ChainReport) -> None:
    """Keep the outcome of a verification: the console shows the latest as the chain's status."""
    conn.execute(
        "INSERT INTO chain_checks (intact_rows, head_seq, head_hash, broken_seq, problem)"
        " VALUES (%s, %s, %s, %s, %s)",
        (
            report.intact_rows,
            report.head.seq if report.head else None,
            report.head.hash if report.head else None,
            report.broken.seq if report.broken else None,
            report.broken.reason if report.broken else None,
        ),
    )


@dataclass(frozen=True)
class ChainCheck:
    checked_at: datetime
    intact_rows: int
    head_seq: int | None
    broken_seq: int | None
    problem: str | None


def last_check(conn: psycopg.Connection) -> ChainCheck | None:
    row = conn.execute(
        "SELECT checked_at, intact_rows, head_seq, broken_seq, problem FROM chain_checks"
        " ORDER BY id DESC LIMIT 1"
    ).fetchone()
    return ChainCheck(*row) if row else None


def verify(conn: psycopg.Connection, anchor: ChainHead | None = None) -> ChainReport:
    """Recompute the whole chain from the database, streaming with a server-side cursor."""
    columns = ", ".join((*CHAINED_FIELDS, "prev_hash", "hash"))
    with conn.transaction(), conn.cursor(name="audit_verify") as cursor:
        cursor.itersize = 5000
        cursor.execute(f"SELECT {columns} FROM audit_log ORDER BY seq")
        report = verify_rows(iter(cursor), anchor)
    if report.broken is None:
        # The chain covers each evidence's SHA-256; the stored evidence must still have it.
        edited = conn.execute(
            "SELECT a.seq FROM audit_log a LEFT JOIN consent_evidence e USING (event_id)"
            " WHERE a.evidence_sha256 IS NOT NULL"
            "   AND (e.body IS NULL OR encode(sha256(e.body), 'hex') <> a.evidence_sha256)"
            " ORDER BY a.seq LIMIT 1"
        ).fetchone()
        if edited is not None:
            broken = ChainBreak(
                edited[0],
                "its evidence does not match the hash the row holds"
                " (evidence was edited or removed)",
            )
            return replace(report, broken=broken, head=None)
    return report


def existing_event_ids(conn: psycopg.Connection, event_ids: Sequence[str]) -> set[str]:
    """Which of ``event_ids`` already have an audit row."""
    rows = conn.execute(
        "SELECT event_id FROM audit_log WHERE event_id = ANY(%s)", (list(event_ids),)
    )
    return {row[0] for row in rows}


def first_results(
    conn: psycopg.Connection, event_ids: Sequence[str]
) -> dict[str, tuple[int, bool]]:
    """(seq, superseded) of the audit row each of ``event_ids`` already has."""
    if not event_ids:
        return {}
    rows = conn.execute(
        "SELECT event_id, seq, superseded FROM audit_log WHERE event_id = ANY(%s)",
        (list(event_ids),),
    )
    return {event_id: (seq, superseded) for event_id, seq, superseded in rows}


def store_evidence(conn: psycopg.Connection, evidence: Sequence[tuple[str, bytes, str]]) -> None:
    """Keep each event's evidence, as the bytes its audit row's evidence_sha256 covers."""
    if evidence:
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO consent_evidence (event_id, body, sha256) VALUES (%s, %s, %s)",
                list(evidence),
            )


def evidence_of(conn: psycopg.Connection, seq: int) -> bytes | None:
    """The evidence an audit row refers to, as stored."""
    row = conn.execute(
        "SELECT e.body FROM audit_log a JOIN consent_evidence e ON e.event_id = a.event_id"
        " WHERE a.seq = %s",
        (seq,),
    ).fetchone()
    return bytes(row[0]) if row else None


def held_text(conn: psycopg.Connection, event_id: str | None) -> tuple[str | None, str | None]:
    """(text, our number) of the possible opt-out that put a number under review."""
    row = conn.execute(
        "SELECT text, our_number FROM audit_log WHERE event_id = %s AND action = %s",
        (event_id, Action.POSSIBLE_OPT_OUT),
    ).fetchone()
    return (row[0], row[1]) if row else (None, None)


# The audit rows rules.is_drift picks out, as SQL.
# Written out rather than bound, so that the planner matches the partial index
# audit_log_drift (migration 0012), whose predicate is this one: a count stays small however
# long the log grows.
_DRIFT_KIND = (
    f"action = '{Action.OPT_OUT}'"
    f" AND source IN ({', '.join(repr(str(source)) for source in sorted(DRIFT_SOURCES))})"
    " AND NOT superseded"
)
_DRIFT = (
    f" FROM audit_log WHERE {_DRIFT_KIND}"
    "   AND previous_status IS DISTINCT FROM %(opted_out)s"
    "   AND (%(since)s::timestamptz IS NULL OR recorded_at >= %(since)s)"
    "   AND (%(profile)s::text IS NULL OR messaging_profile_id = %(profile)s)"
)


def _drift_params(since: Any, profile: str | None) -> dict[str, Any]:
    return {"opted_out": Status.OPTED_OUT, "since": since, "profile": profile}


def drift_rows(
    conn: psycopg.Connection, since: Any = None, profile: str | None = None
) -> list[dict[str, Any]]:
    """The drift opt-outs, oldest first."""
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "SELECT seq, recorded_at, messaging_profile_id, phone_number, our_number, source,"
            f"  previous_status, text {_DRIFT} ORDER BY seq",
            _drift_params(since, profile),
        ).fetchall()


def drift_count(conn: psycopg.Connection) -> int:
    row = conn.execute(f"SELECT count(*) {_DRIFT}", _drift_params(None, None)).fetchone()
    return int(row[0]) if row else 0


def head(conn: psycopg.Connection) -> tuple[int, str, datetime] | None:
    """(seq, hash, recorded_at) of the chain's last row."""
    row = conn.execute(
        "SELECT seq, hash, recorded_at FROM audit_log ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    return (row[0], row[1], row[2]) if row else None


@dataclass(frozen=True)
class AuditStats:
    counts: list[tuple[str, str, int]]
    honored_all: tuple[float, float, float, float] | None
    honored_opt_out: tuple[float, float, float, float] | None


def audit_stats(
    conn: psycopg.Connection, since: Any = None, profile: str | None = None
) -> AuditStats:
    """Rows by action and source; p50/p90/p99/max of honored seconds (operator rows aside)."""
    where = (
        "(%(since)s::timestamptz IS NULL OR recorded_at >= %(since)s)"
        " AND (%(profile)s::text IS NULL OR messaging_profile_id = %(profile)s)"
    )
    params = {"since": since, "profile": profile}
    counts = conn.execute(
        f"SELECT action, source, count(*) FROM audit_log WHERE {where}"
        " GROUP BY action, source ORDER BY action, source",
        params,
    ).fetchall()
    honored = "extract(epoch FROM recorded_at - received_at)"
    percentiles = (
        f"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY {honored}),"
        f" percentile_cont(0.9) WITHIN GROUP (ORDER BY {honored}),"
        f" percentile_cont(0.99) WITHIN GROUP (ORDER BY {honored}), max({honored})"
        f" FROM audit_log WHERE {where} AND source <> 'operator' AND received_at IS NOT NULL"
    )
    everything = conn.execute(percentiles, params).fetchone()
    opt_outs = conn.execute(percentiles + " AND action = 'opt_out'", params).fetchone()

    def floats(row: Any) -> tuple[float, float, float, float] | None:
        return None if row is None or row[0] is None else tuple(float(v) for v in row)  # type: ignore[return-value]

    return AuditStats([(a, s, int(n)) for a, s, n in counts], floats(everything), floats(opt_outs))
