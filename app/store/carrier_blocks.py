"""The carrier_blocks table: toll-free carrier blocks per (toll-free number, subscriber),
independent of messaging profiles. Rows are locked in key order, as subscribers are."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from app.consent.rules import CarrierBlockState
from app.store.db import key_taken_on_conflict
from app.store.subscribers import _by_key


def lock(
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
            states[key] = CarrierBlockState(
                blocked=False, since=None, last=None, profile=None, new=True
            )
    return states


def save(conn: psycopg.Connection, states: dict[tuple[str, str], CarrierBlockState]) -> None:
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
        with key_taken_on_conflict():
            conn.execute(
                "INSERT INTO carrier_blocks (toll_free_number, phone_number, blocked, since,"
                "  last_occurred_at, last_event_id, messaging_profile_id, updated_at)"
                " SELECT t, n, blocked, since, occ, eid, profile, clock_timestamp()"
                f" FROM {values} WHERE u.new ORDER BY t, n",
                columns,
            )
        for _, state in changed:
            state.new = False


def of_subscriber(conn: psycopg.Connection, number: str) -> list[dict[str, Any]]:
    """Every toll-free number's block state for ``number``."""
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "SELECT toll_free_number, blocked, since FROM carrier_blocks"
            " WHERE phone_number = %s AND last_event_id <> '' ORDER BY toll_free_number",
            (number,),
        ).fetchall()


def blocked_from(
    conn: psycopg.Connection, sender: str, numbers: Sequence[str]
) -> dict[str, tuple[datetime, str | None]]:
    """Which of ``numbers`` the carrier blocks from texting by ``sender``: since when, and the
    profile the block came through."""
    rows = conn.execute(
        "SELECT phone_number, since, messaging_profile_id FROM carrier_blocks"
        " WHERE toll_free_number = %s AND phone_number = ANY(%b) AND blocked",
        (sender, list(numbers)),
    )
    return {number: (since, profile) for number, since, profile in rows}
