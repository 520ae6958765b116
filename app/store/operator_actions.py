"""The operator_actions table: what people did in the console besides consent decisions
(those are audit rows). Each is written in the transaction of the action it records."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row


def record(
    conn: psycopg.Connection, operator: str, action: str, target: str = "", detail: str = ""
) -> None:
    conn.execute(
        "INSERT INTO operator_actions (operator, action, target, detail) VALUES (%s, %s, %s, %s)",
        (operator, action, target, detail),
    )


def recent(conn: psycopg.Connection, limit: int = 10) -> list[dict[str, Any]]:
    """The latest actions, newest first."""
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "SELECT at, operator, action, target, detail FROM operator_actions"
            " ORDER BY id DESC LIMIT %s",
            (limit,),
        ).fetchall()
