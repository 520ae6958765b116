"""An import applies consent set-based in SQL (store.consent_staging); POST /v1/consent applies
it through rules.apply_to_subscriber. Whatever the stored state and the facts, the two must
leave the same subscribers and write the same audit rows."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.consent.intake import ConsentRecord
from app.consent.rules import SubscriberState
from app.consent.values import Channel
from app.services import intake

KEYS = [("P1", "+13125550101"), ("P1", "+13125550102"), ("P2", "+13125550101")]
BASE = datetime(2026, 3, 1, tzinfo=UTC)
# Few distinct times, so that ties (broken by event id) are common.
times = st.integers(0, 3).map(lambda minutes: BASE + timedelta(minutes=minutes))
# Stored event ids that sort before, among and after the facts' ids ("api:k0" … "api:k9").
stored_ids = st.sampled_from(["api:a", "api:k4", "api:z", "evt-1"])

stored_row = st.fixed_dictionaries(
    {
        "consent": st.sampled_from(["unknown", "opted_in", "opted_out"]),
        "last": st.tuples(times, stored_ids),
        "review_state": st.sampled_from([None, "pending", "confirmed", "dismissed"]),
        "review_last": st.tuples(times, stored_ids),
        "last_opt_out_at": st.none() | times,
        "last_opt_in_at": st.none() | times,
    }
)
fact = st.tuples(st.sampled_from(KEYS), st.sampled_from(["opt_out", "opt_in"]), times)


@pytest.fixture(scope="module")
def rules_database(make_database: Callable[[], str]) -> str:
    return make_database()


def _store(conn: psycopg.Connection, rows: dict[tuple[str, str], dict[str, Any]]) -> None:
    for (profile, number), row in rows.items():
        unknown = row["consent"] == "unknown"
        last = None if unknown else row["last"]
        review_last = row["review_last"] if row["review_state"] else None
        state = SubscriberState(row["consent"], last, row["review_state"], review_last)
        conn.execute(
            "INSERT INTO subscribers (messaging_profile_id, phone_number, status, consent_status,"
            " last_occurred_at, last_event_id, review_state, review_occurred_at, review_event_id,"
            " last_opt_out_at, last_opt_in_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                profile,
                number,
                state.status,
                row["consent"],
                *(last or (None, None)),
                row["review_state"],
                *(review_last or (None, None)),
                row["last_opt_out_at"],
                row["last_opt_in_at"],
            ),
        )


def _outcome(conn: psycopg.Connection) -> tuple[list[Any], list[Any]]:
    subscribers = conn.execute(
        "SELECT messaging_profile_id, phone_number, status, consent_status, last_occurred_at,"
        " last_event_id, review_state, review_occurred_at, review_event_id, last_opt_out_at,"
        " last_opt_in_at FROM subscribers ORDER BY 1, 2"
    ).fetchall()
    audit = conn.execute(
        "SELECT event_id, message_id, occurred_at, messaging_profile_id, phone_number,"
        " our_number, country, action, source, text, autoresponse_type, previous_status,"
        " new_status, superseded, telnyx_block, channel, evidence_sha256"
        " FROM audit_log ORDER BY seq"
    ).fetchall()
    return subscribers, audit


EVIDENCE = b'{"consent_text":"Yes"}'


def _records(facts: list[tuple[Any, ...]]) -> list[ConsentRecord]:
    return [
        ConsentRecord(
            number,
            profile,
            action,
            occurred_at,
            Channel.AGENT,
            f"k{index}",
            EVIDENCE if action == "opt_in" else None,
            hashlib.sha256(EVIDENCE).hexdigest() if action == "opt_in" else None,
        )
        for index, ((profile, number), action, occurred_at) in enumerate(facts)
    ]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stored=st.dictionaries(st.sampled_from(KEYS), stored_row, max_size=3),
    facts=st.lists(fact, min_size=1, max_size=10),
    batch_rows=st.sampled_from([1, 2, 3, 1000]),
)
def test_an_import_applies_facts_as_the_intake_api_does(
    rules_database: str,
    stored: dict[tuple[str, str], dict[str, Any]],
    facts: list[tuple[Any, ...]],
    batch_rows: int,
) -> None:
    records = _records(facts)
    with psycopg.connect(rules_database) as conn:
        with conn.transaction(force_rollback=True):
            _store(conn, stored)
            intake.apply_records(conn, records)
            expected = _outcome(conn)
        with conn.transaction(force_rollback=True):
            _store(conn, stored)
            staged = intake.stage_import(conn, enumerate(records, start=2))
            counts = intake.apply_import(conn, staged, batch_rows=batch_rows)
            assert _outcome(conn) == expected
    superseded = sum(1 for row in expected[1] if row[13])
    assert (counts["applied"], counts["superseded"], counts["duplicate"]) == (
        len(records) - superseded,
        superseded,
        0,
    )
