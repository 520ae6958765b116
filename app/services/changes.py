"""The changes feed (spec §11): audit rows after a cursor, in seq order, with the audit
export's fields.

The audit sequence is the cursor. It is gapless and a row becomes visible only in seq order:
appends hold one lock from taking a seq until they commit, so a reader that saw seq N never
finds an N - 1 committed later. PostgreSQL writes the JSON, so a page of 10,000 rows costs
one query and no per-row Python.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import psycopg

from app.services.exports import audit_select

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_WAIT_SECONDS = 30.0
# A waiting reader looks again this often, giving its connection back in between.
POLL_SECONDS = 0.2

_PAGE = (
    "SELECT coalesce(json_agg(r ORDER BY r.seq), '[]')::text, max(r.seq)"
    f" FROM (SELECT {audit_select()} FROM audit_log WHERE seq > %s ORDER BY seq LIMIT %s) r"
)


@dataclass(frozen=True)
class Page:
    changes_json: str  # a JSON array of the rows
    next: int  # the cursor for the next call: the last row's seq, or ``after`` when none


def page(conn: psycopg.Connection, after: int, limit: int) -> Page:
    changes, last = conn.execute(_PAGE, (after, limit)).fetchone()  # type: ignore[misc]
    return Page(changes, after if last is None else last)


def wait_for_page(
    connection: Callable[[], AbstractContextManager[psycopg.Connection]],
    after: int,
    limit: int,
    wait_seconds: float,
) -> Page:
    """The next page, waiting up to ``wait_seconds`` for one when nothing is newer (long
    poll). ``connection`` lends a connection for each look."""
    deadline = time.monotonic() + min(wait_seconds, MAX_WAIT_SECONDS)
    while True:
        with connection() as conn:
            found = page(conn, after, limit)
        if found.next > after or time.monotonic() + POLL_SECONDS > deadline:
            return found
        time.sleep(POLL_SECONDS)
