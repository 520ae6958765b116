"""The subscribers table: consent per (messaging profile, number), and what can-send and the
subscriber API read from it. Rows are locked in key order so concurrent batches never
deadlock; arrays travel in binary (%b): psycopg's text array dumper costs microseconds per
element."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from app.consent.rules import SubscriberState
from app.consent.scopes import ProfileConsent
from app.store.db import key_taken_on_conflict


def lock(
    conn: psycopg.Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], SubscriberState]:
    ordered = sorted(set(keys))
    if not ordered:
        return {}
    rows = conn.execute(
        "SELECT s.messaging_profile_id, s.phone_number, s.consent_status, s.last_occurred_at,"
        "  s.last_event_id, s.review_state, s.review_occurred_at, s.review_event_id,"
        "  s.last_opt_out_at, s.last_opt_in_at"
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
            *opted_at,
        )
        for p, n, consent, occ, eid, review_state, review_occ, review_eid, *opted_at in rows
    }
    # A number that texts a keyword has been seen: it gets a row, 'unknown' until a STOP/START.
    for key in ordered:
        if key not in states:
            states[key] = SubscriberState("unknown", None, new=True)
    return states


def _by_key(item: tuple[tuple[str, str], object]) -> tuple[str, str]:
    return item[0]  # rows are written in key order, as they were locked


_SUBSCRIBER_VALUES = (
    "unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::timestamptz[], %b::text[],"
    " %b::text[], %b::timestamptz[], %b::text[], %b::timestamptz[], %b::timestamptz[])"
    " AS u(p, n, status, consent, occ, eid, review_state, review_occ, review_eid, opt_out_at,"
    " opt_in_at)"
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
        [s.last_opt_out_at for _, s in states],
        [s.last_opt_in_at for _, s in states],
    )


def save(conn: psycopg.Connection, states: dict[tuple[str, str], SubscriberState]) -> None:
    """Update changed rows and insert new ones; KeyTaken if a new key is no longer free."""
    changed = sorted(((k, s) for k, s in states.items() if s.changed and not s.new), key=_by_key)
    if changed:
        conn.execute(
            "UPDATE subscribers AS s SET status = u.status, consent_status = u.consent,"
            "  last_occurred_at = u.occ, last_event_id = u.eid, review_state = u.review_state,"
            "  review_occurred_at = u.review_occ, review_event_id = u.review_eid,"
            "  last_opt_out_at = u.opt_out_at, last_opt_in_at = u.opt_in_at,"
            "  updated_at = clock_timestamp()"
            f" FROM {_SUBSCRIBER_VALUES}"
            " WHERE s.messaging_profile_id = u.p AND s.phone_number = u.n",
            _subscriber_columns(changed),
        )
    new = sorted(((k, s) for k, s in states.items() if s.new), key=_by_key)
    if new:
        with key_taken_on_conflict():
            conn.execute(
                "INSERT INTO subscribers (messaging_profile_id, phone_number, status,"
                "  consent_status, last_occurred_at, last_event_id, review_state,"
                "  review_occurred_at, review_event_id, last_opt_out_at, last_opt_in_at,"
                "  updated_at)"
                f" SELECT u.*, clock_timestamp() FROM {_SUBSCRIBER_VALUES} ORDER BY p, n",
                _subscriber_columns(new),
            )
        for _, state in new:
            state.new = False


def exists(conn: psycopg.Connection, key: tuple[str, str]) -> bool:
    row = conn.execute(
        "SELECT 1 FROM subscribers WHERE messaging_profile_id = %s AND phone_number = %s", key
    ).fetchone()
    return row is not None


def get(conn: psycopg.Connection, profile: str, number: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "SELECT phone_number, messaging_profile_id, status, updated_at, last_event_id"
            " FROM subscribers WHERE messaging_profile_id = %s AND phone_number = %s",
            (profile, number),
        ).fetchone()


def held_for_review(conn: psycopg.Connection, profile: str | None) -> list[dict[str, Any]]:
    """Numbers held for review, oldest first, with the text that put them there."""
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "SELECT s.messaging_profile_id, s.phone_number, s.review_occurred_at AS occurred_at,"
            "  s.review_event_id AS event_id, a.text, a.our_number"
            " FROM subscribers s LEFT JOIN audit_log a"
            "   ON a.event_id = s.review_event_id AND a.action = 'possible_opt_out'"
            " WHERE s.status = 'review'"
            "   AND (%(profile)s::text IS NULL OR s.messaging_profile_id = %(profile)s)"
            " ORDER BY s.review_occurred_at, s.phone_number",
            {"profile": profile},
        ).fetchall()


def consent_across(
    conn: psycopg.Connection, profiles: frozenset[str] | None, numbers: Sequence[str]
) -> list[tuple[str, ProfileConsent]]:
    """(number, facts) of each of ``numbers`` on ``profiles`` (None: on every profile)."""
    columns = (
        "SELECT phone_number, messaging_profile_id, status, last_opt_out_at, last_opt_in_at,"
        " review_occurred_at FROM subscribers WHERE phone_number = ANY(%b)"
    )
    if profiles is None:
        rows = conn.execute(columns, (list(numbers),)).fetchall()
    else:
        rows = conn.execute(
            columns + " AND messaging_profile_id = ANY(%s)", (list(numbers), sorted(profiles))
        ).fetchall()
    return [(number, ProfileConsent(*facts)) for number, *facts in rows]


def everywhere(conn: psycopg.Connection, number: str) -> list[dict[str, Any]]:
    """The number's state on every profile that has seen it."""
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "SELECT messaging_profile_id, status, updated_at, last_event_id FROM subscribers"
            " WHERE phone_number = %s ORDER BY messaging_profile_id",
            (number,),
        ).fetchall()


def count_by_status(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT status, count(*) FROM subscribers GROUP BY status").fetchall()
    return {status: count for status, count in rows}


# Above this many rows, counting every status would take longer than a page may (about 0.1 s
# at a million rows): the statistics ANALYZE keeps give the split instead.
EXACT_COUNT_LIMIT = 200_000


def status_counts(conn: psycopg.Connection) -> tuple[dict[str, int], bool]:
    """Subscribers by status, and whether the figures are estimates. Estimates come from the
    table's statistics (its size and each status's share, as of its last ANALYZE); numbers
    held for review are always counted exactly, through their partial index."""
    row = conn.execute(
        "SELECT reltuples FROM pg_class WHERE oid = 'subscribers'::regclass"
    ).fetchone()
    estimated_rows = float(row[0]) if row else -1.0
    if estimated_rows < EXACT_COUNT_LIMIT:  # -1: never analysed, so small or brand new
        return count_by_status(conn), False
    shares = conn.execute(
        "SELECT m.status, round(m.share * %s)::int8"
        " FROM pg_stats s, unnest(s.most_common_vals::text::text[], s.most_common_freqs)"
        "   AS m(status, share)"
        " WHERE s.schemaname = current_schema() AND s.tablename = 'subscribers'"
        "   AND s.attname = 'status'",
        (estimated_rows,),
    ).fetchall()
    if not shares:
        return count_by_status(conn), False
    counts = {status: int(count) for status, count in shares}
    held = conn.execute("SELECT count(*) FROM subscribers WHERE status = 'review'").fetchone()
    counts["review"] = int(held[0]) if held else 0
    return counts, True
