"""A session's staging table for `import consent` (spec §10): the checked rows of a file go
in by one binary COPY, repeats are set aside in SQL, and the rest are applied to the
subscribers set-based, a batch at a time in (occurred_at, event id) order, so a million rows
never sit in memory.

The table is TEMPORARY: it is not WAL-logged, no other session sees it, and it goes with
the connection, so an interrupted import leaves nothing behind; what was applied is in the
audit log, and a re-run sets it aside as already imported.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

import psycopg

from app.store.db import key_taken_on_conflict

TABLE = "consent_staging"
ORDERED = "consent_staged_in_order"
_COLUMNS = (
    "line",
    "event_id",
    "messaging_profile_id",
    "phone_number",
    "action",
    "occurred_at",
    "channel",
    "evidence",
    "evidence_sha256",
)
_COPY_TYPES = ["int8", "text", "text", "text", "text", "timestamptz", "text", "bytea", "text"]


class StagedRow(NamedTuple):
    line: int  # where the row was in its file
    event_id: str
    messaging_profile_id: str
    phone_number: str
    action: str
    occurred_at: datetime
    channel: str
    evidence: bytes | None
    evidence_sha256: str | None


def create(conn: psycopg.Connection) -> None:
    conn.execute(
        f"CREATE TEMPORARY TABLE {TABLE} (line int8 NOT NULL, event_id text NOT NULL,"
        " messaging_profile_id text NOT NULL, phone_number text NOT NULL,"
        " action text NOT NULL, occurred_at timestamptz NOT NULL, channel text NOT NULL,"
        " evidence bytea, evidence_sha256 text)"
    )


def copy_in(conn: psycopg.Connection, rows: Iterable[StagedRow]) -> int:
    """Stream rows into the staging table; return how many went in."""
    count = 0
    statement = f"COPY {TABLE} ({', '.join(_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
    with conn.cursor().copy(statement) as copy:
        copy.set_types(_COPY_TYPES)
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def put_in_order(conn: psycopg.Connection) -> int:
    """Number the staged rows to apply 1, 2, … in (occurred_at, event id) order, leaving out
    rows already in the audit log and repeats of an earlier line of the file; return how
    many there are to apply.

    Batches are then ranges of that number: the planner estimates them exactly, where a
    range of (occurred_at, event_id) pairs is estimated at many times its size and turns
    every batch's subscriber lookups into scans of the whole table.
    """
    conn.execute(
        f"CREATE TEMPORARY TABLE {ORDERED} AS"
        " SELECT row_number() OVER (ORDER BY occurred_at, event_id) AS ord, first.*"
        f" FROM (SELECT DISTINCT ON (event_id) * FROM {TABLE} ORDER BY event_id, line) first"
        " WHERE NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.event_id = first.event_id)"
    )
    conn.execute(f"DROP TABLE {TABLE}")
    conn.execute(f"CREATE UNIQUE INDEX ON {ORDERED} (ord)")
    conn.execute(f"ANALYZE {ORDERED}")
    return conn.execute(f"SELECT count(*) FROM {ORDERED}").fetchone()[0]  # type: ignore[index]


def _status(consent: str, occ: str, eid: str) -> str:
    """SubscriberState.status in SQL, for a consent set by the event at (occ, eid)."""
    return (
        f"CASE WHEN {consent} = 'opted_out' THEN 'opted_out'"
        " WHEN review_state = 'pending' AND"
        f"  ({occ} IS NULL OR (review_occurred_at, review_event_id) > ({occ}, {eid}))"
        f" THEN 'review' ELSE {consent} END"
    )


class Applied(NamedTuple):
    """What an audit row needs of one staged fact once it is applied."""

    event_id: str
    occurred_at: datetime
    messaging_profile_id: str
    phone_number: str
    action: str
    previous_status: str
    new_status: str
    superseded: bool
    channel: str
    evidence_sha256: str | None


# The set-based form of rules.apply_to_subscriber for opt-outs and opt-ins (source api), for
# one batch of staged rows in (occurred_at, event id) order; tests hold the two to the same
# results. Per subscriber, a fact no newer than the row's last event is superseded, so the
# superseded facts of a key come before its applied ones, and the state just before an
# applied fact is the one the previous applied fact left, or the stored row's.
_APPLY_BATCH = f"""
WITH facts AS (
    SELECT b.ord, b.event_id, b.messaging_profile_id AS p, b.phone_number AS n, b.action,
           b.occurred_at AS occ,
           CASE b.action WHEN 'opt_out' THEN 'opted_out' ELSE 'opted_in' END AS consent,
           s.ctid AS row_id, s.ctid IS NULL AS new,
           coalesce(s.consent_status, 'unknown') AS stored_consent,
           s.last_occurred_at AS stored_occ, s.last_event_id AS stored_eid,
           s.review_state, s.review_occurred_at, s.review_event_id,
           s.last_opt_out_at, s.last_opt_in_at,
           coalesce((b.occurred_at, b.event_id) <= (s.last_occurred_at, s.last_event_id),
                    false) AS superseded
    -- Rows are locked as they are read, in key order as store.subscribers locks them, so
    -- concurrent workers cannot deadlock with an import; what is read stays as it is.
    FROM (
        SELECT * FROM {ORDERED} WHERE ord > %(first)s AND ord <= %(last)s
        ORDER BY messaging_profile_id, phone_number
    ) b LEFT JOIN LATERAL (
        SELECT ctid, * FROM subscribers
        WHERE messaging_profile_id = b.messaging_profile_id AND phone_number = b.phone_number
        FOR UPDATE
    ) s ON true
),
steps AS (
    SELECT f.*,
           coalesce(lag(NOT superseded) OVER key_order, false) AS after_applied,
           lag(consent) OVER key_order AS lag_consent,
           lag(occ) OVER key_order AS lag_occ,
           lag(event_id) OVER key_order AS lag_eid,
           lead(ord) OVER key_order IS NULL AS key_last,
           greatest(last_opt_out_at, max(occ) FILTER (WHERE action = 'opt_out')
             OVER whole_key) AS opt_out_at,
           greatest(last_opt_in_at, max(occ) FILTER (WHERE action = 'opt_in')
             OVER whole_key) AS opt_in_at
    FROM facts f
    WINDOW key_order AS (PARTITION BY p, n ORDER BY occ, event_id),
           whole_key AS (key_order ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
),
before AS (
    SELECT s.*,
           CASE WHEN after_applied THEN lag_consent ELSE stored_consent END AS prev_consent,
           CASE WHEN after_applied THEN lag_occ ELSE stored_occ END AS prev_occ,
           CASE WHEN after_applied THEN lag_eid ELSE stored_eid END AS prev_eid
    FROM steps s
),
after AS (
    SELECT b.*,
           CASE WHEN superseded THEN prev_consent ELSE consent END AS next_consent,
           CASE WHEN superseded THEN prev_occ ELSE occ END AS next_occ,
           CASE WHEN superseded THEN prev_eid ELSE event_id END AS next_eid
    FROM before b
),
audited AS (
    SELECT ord, p, n, row_id, new, key_last, next_consent, next_occ, next_eid, opt_out_at,
           opt_in_at, superseded,
           {_status("prev_consent", "prev_occ", "prev_eid")} AS previous_status,
           {_status("next_consent", "next_occ", "next_eid")} AS new_status
    FROM after
),
updated AS (
    UPDATE subscribers s SET status = a.new_status, consent_status = a.next_consent,
        last_occurred_at = a.next_occ, last_event_id = a.next_eid,
        last_opt_out_at = a.opt_out_at, last_opt_in_at = a.opt_in_at,
        updated_at = clock_timestamp()
    FROM audited a
    -- By the rows' ids, as found: a join by key would scan the whole table once it is large.
    WHERE s.ctid = ANY (ARRAY(SELECT row_id FROM audited WHERE key_last AND NOT new))
      AND a.row_id = s.ctid AND a.key_last
),
inserted AS (
    INSERT INTO subscribers (messaging_profile_id, phone_number, status, consent_status,
        last_occurred_at, last_event_id, last_opt_out_at, last_opt_in_at, updated_at)
    SELECT p, n, new_status, next_consent, next_occ, next_eid, opt_out_at, opt_in_at,
           clock_timestamp()
    FROM audited WHERE key_last AND new ORDER BY p, n
)
SELECT b.event_id, b.occurred_at, b.messaging_profile_id, b.phone_number, b.action,
       a.previous_status, a.new_status, a.superseded, b.channel, b.evidence_sha256
FROM audited a JOIN {ORDERED} b USING (ord)
WHERE b.ord > %(first)s AND b.ord <= %(last)s
ORDER BY ord
"""


def apply_batch(conn: psycopg.Connection, first: int, last: int) -> list[Applied]:
    """Apply the staged rows numbered first+1 … last to their subscribers; return them as
    applied, in order. KeyTaken when a new subscriber's key was taken meanwhile."""
    span = {"first": first, "last": last}
    with key_taken_on_conflict():
        rows = conn.cursor(binary=True).execute(_APPLY_BATCH, span)
        return [Applied(*row) for row in rows]


def numbers(conn: psycopg.Connection, first: int, last: int) -> list[str]:
    """The phone numbers of the staged rows numbered first+1 … last."""
    rows = conn.execute(
        f"SELECT phone_number FROM {ORDERED} WHERE ord > %s AND ord <= %s", (first, last)
    )
    return [number for (number,) in rows]


def store_evidence(conn: psycopg.Connection, first: int, last: int) -> None:
    """Keep the evidence of the staged rows numbered first+1 … last."""
    conn.execute(
        "INSERT INTO consent_evidence (event_id, body, sha256)"
        f" SELECT event_id, evidence, evidence_sha256 FROM {ORDERED}"
        " WHERE ord > %s AND ord <= %s AND evidence IS NOT NULL",
        (first, last),
    )
