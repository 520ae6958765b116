"""One definition per value: the database's CHECK constraints hold exactly the values the code
defines (app.consent.values, app.store.inbox)."""

from __future__ import annotations

import re

import psycopg
import pytest

from app.consent.values import CONSENT_STATUSES, Action, Channel, ReviewState, Source, Status
from app.store.inbox import EventStatus

CHECKED = [
    ("subscribers", "status", Status),
    ("subscribers", "consent_status", CONSENT_STATUSES),
    ("subscribers", "review_state", ReviewState),
    ("audit_log", "action", Action),
    ("audit_log", "source", Source),
    ("audit_log", "channel", Channel),
    ("webhook_events", "status", EventStatus),
]


def allowed_by_check(conn: psycopg.Connection, table: str, column: str) -> set[str]:
    definitions = [
        row[0]
        for row in conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype = 'c'",
            (table,),
        )
    ]
    (definition,) = [d for d in definitions if re.search(rf"\b{column}\b", d)]
    return set(re.findall(r"'([^']+)'::text", definition))


@pytest.mark.parametrize(("table", "column", "values"), CHECKED)
def test_check_constraint_allows_exactly_the_values_the_code_defines(
    database_url: str, table: str, column: str, values: object
) -> None:
    with psycopg.connect(database_url) as conn:
        assert allowed_by_check(conn, table, column) == {str(v) for v in values}
