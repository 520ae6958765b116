"""The endpoints table: the organisation's webhook receivers (spec §11)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

_COLUMNS = (
    "id, url, event_types, messaging_profile_id, enabled, disabled_reason, failing_since,"
    " created_at"
)


def add(
    conn: psycopg.Connection,
    endpoint_id: str,
    url: str,
    secret: str,
    event_types: list[str] | None,
    profile: str | None,
) -> None:
    conn.execute(
        "INSERT INTO endpoints (id, url, secret, event_types, messaging_profile_id)"
        " VALUES (%s, %s, %s, %s, %s)",
        (endpoint_id, url, secret, event_types, profile),
    )


def all_endpoints(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every endpoint, oldest first (secrets left out)."""
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            f"SELECT {_COLUMNS} FROM endpoints ORDER BY created_at, id"
        ).fetchall()


def get(conn: psycopg.Connection, endpoint_id: str) -> dict[str, Any] | None:
    """One endpoint, with its secret."""
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            f"SELECT {_COLUMNS}, secret FROM endpoints WHERE id = %s", (endpoint_id,)
        ).fetchone()


def remove(conn: psycopg.Connection, endpoint_id: str) -> bool:
    """Delete an endpoint and its outbox; False if there was none."""
    return conn.execute("DELETE FROM endpoints WHERE id = %s", (endpoint_id,)).rowcount > 0


def failing_count(conn: psycopg.Connection) -> int:
    """Endpoints disabled, or in a run of failed deliveries."""
    row = conn.execute(
        "SELECT count(*) FROM endpoints WHERE NOT enabled OR failing_since IS NOT NULL"
    ).fetchone()
    return int(row[0]) if row else 0
