"""The worker's rules (spec §5), applied in-process on a real PostgreSQL, rolled back per test."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.consent.keyword_configs import KeywordEngine, parse_configs
from app.devtools.simulate import encode, message_received
from app.services import apply_events
from app.services.lookup import can_send
from app.services.review import ReviewError, decide, list_pending
from app.store import inbox
from tests.conftest import example, fresh_ids, new_profile
from tests.keyword_configs import KEYWORDS

SUBSCRIBER = "+13125550147"
LONG_CODE = "+17735550188"
TOLL_FREE = "+18885550123"


@pytest.fixture(scope="module")
def sync_database(make_database: Callable[[], str]) -> str:
    # Its own database: the receiver tests leave committed pending rows in theirs.
    return make_database()


@pytest.fixture
def db(sync_database: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(sync_database) as conn:
        yield conn
        conn.rollback()


def deliver(conn: psycopg.Connection, payload: dict[str, Any]) -> None:
    inbox.record_event(
        conn,
        event_id=payload["data"]["id"],
        event_type=payload["data"]["event_type"],
        status="pending" if payload["data"]["event_type"] == "message.received" else "ignored",
        raw_body=encode(payload),
        signed_at=None,
    )


def apply(conn: psycopg.Connection, batch_size: int = 100) -> apply_events.BatchResult:
    total = apply_events.BatchResult()
    while claimed := inbox.claim_pending(conn, batch_size):
        total.add(apply_events.apply_claimed(conn, claimed, max_attempts=3))
    return total


def status_of(conn: psycopg.Connection, profile: str, number: str = SUBSCRIBER) -> str | None:
    row = conn.execute(
        "SELECT status FROM subscribers WHERE messaging_profile_id = %s AND phone_number = %s",
        (profile, number),
    ).fetchone()
    return row[0] if row else None


def carrier_blocked(conn: psycopg.Connection, toll_free: str, number: str = SUBSCRIBER) -> bool:
    row = conn.execute(
        "SELECT blocked FROM carrier_blocks WHERE toll_free_number = %s AND phone_number = %s",
        (toll_free, number),
    ).fetchone()
    return bool(row and row[0])


def audit_rows(conn: psycopg.Connection, profile: str) -> list[dict[str, Any]]:
    cursor = conn.execute(
        "SELECT event_id, action, source, previous_status, new_status, superseded, telnyx_block,"
        " text, our_number, country FROM audit_log WHERE messaging_profile_id = %s ORDER BY seq",
        (profile,),
    )
    names = [c.name for c in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def event(
    text: str,
    *,
    profile: str,
    to: str = LONG_CODE,
    at: datetime | None = None,
    autoresponse: str | None = None,
    number: str = SUBSCRIBER,
) -> dict[str, Any]:
    return message_received(
        text=text,
        from_number=number,
        to_number=to,
        profile_id=profile,
        autoresponse_type=autoresponse,
        occurred_at=at or datetime.now(UTC),
    )


def test_stop_with_telnyx_autoresponse_opts_out_with_telnyx_block(db: psycopg.Connection) -> None:
    profile = new_profile()
    deliver(db, fresh_ids(example("stop_long_code"), profile))
    apply(db)
    assert status_of(db, profile) == "opted_out"
    (row,) = audit_rows(db, profile)
    assert row["action"] == "opt_out" and row["source"] == "telnyx"
    assert (row["previous_status"], row["new_status"]) == ("unknown", "opted_out")
    assert row["telnyx_block"] is True and row["country"] == "US" and row["text"] == "STOP"


def test_revoke_opts_out_by_keyword_without_telnyx_block(db: psycopg.Connection) -> None:
    profile = new_profile()
    deliver(db, fresh_ids(example("revoke_without_autoresponse"), profile))
    apply(db)
    assert status_of(db, profile) == "opted_out"
    (row,) = audit_rows(db, profile)
    assert (row["action"], row["source"], row["telnyx_block"]) == ("opt_out", "keyword", False)


@pytest.mark.parametrize("text", ["opt out", "OPT-OUT", "optout", "Stop.", "STOP!!", "quit"])
def test_stop_class_keywords_without_autoresponse_opt_out(
    db: psycopg.Connection, text: str
) -> None:
    profile = new_profile()
    deliver(db, event(text, profile=profile))
    apply(db)
    assert status_of(db, profile) == "opted_out"


def test_start_after_stop_opts_back_in(db: psycopg.Connection) -> None:
    profile = new_profile()
    deliver(db, fresh_ids(example("stop_long_code"), profile))
    deliver(db, fresh_ids(example("start_long_code"), profile))
    apply(db)
    assert status_of(db, profile) == "opted_in"
    assert [r["action"] for r in audit_rows(db, profile)] == ["opt_out", "opt_in"]


def test_help_is_audited_and_changes_no_consent(db: psycopg.Connection) -> None:
    profile = new_profile()
    deliver(db, fresh_ids(example("stop_long_code"), profile))
    deliver(db, fresh_ids(example("help"), profile))
    apply(db)
    assert status_of(db, profile) == "opted_out"
    help_row = audit_rows(db, profile)[-1]
    assert help_row["action"] == "help"
    assert (help_row["previous_status"], help_row["new_status"]) == ("opted_out", "opted_out")


def test_ordinary_message_is_processed_without_audit_or_state(db: psycopg.Connection) -> None:
    profile = new_profile()
    payload = fresh_ids(example("ordinary_message"), profile)
    deliver(db, payload)
    result = apply(db)
    assert result.outcomes == {"ordinary": 1}
    assert status_of(db, profile) is None and audit_rows(db, profile) == []
    (status,) = db.execute(
        "SELECT status FROM webhook_events WHERE event_id = %s", (payload["data"]["id"],)
    ).fetchone()  # type: ignore[misc]
    assert status == "processed"


def test_stop_to_toll_free_number_records_carrier_block(db: psycopg.Connection) -> None:
    profile = new_profile()
    deliver(db, fresh_ids(example("stop_toll_free"), profile))
    apply(db)
    assert status_of(db, profile) == "opted_out"
    assert carrier_blocked(db, TOLL_FREE)
    actions = [(r["action"], r["new_status"]) for r in audit_rows(db, profile)]
    assert actions == [("opt_out", "opted_out"), ("carrier_block", "blocked")]
    db.rollback()


def test_start_to_long_code_reopens_profile_but_keeps_toll_free_carrier_block(
    db: psycopg.Connection,
) -> None:
    profile = new_profile()
    number = f"+1312555{uuid.uuid4().int % 10_000:04d}"
    deliver(
        db,
        event(
            "stop",
            profile=profile,
            to=TOLL_FREE,
            number=number,
            autoresponse="STOP",
            at=datetime(2026, 1, 1, tzinfo=UTC),
        ),
    )
    deliver(
        db,
        event(
            "START",
            profile=profile,
            to=LONG_CODE,
            number=number,
            autoresponse="START",
            at=datetime(2026, 1, 2, tzinfo=UTC),
        ),
    )
    apply(db)
    assert status_of(db, profile, number) == "opted_in"
    assert carrier_blocked(db, TOLL_FREE, number)


def test_unstop_to_toll_free_number_lifts_carrier_block(db: psycopg.Connection) -> None:
    profile = new_profile()
    deliver(db, fresh_ids(example("stop_toll_free"), profile))
    deliver(db, fresh_ids(example("unstop_toll_free"), profile))
    apply(db)
    assert not carrier_blocked(db, TOLL_FREE)
    assert status_of(db, profile) == "opted_in"
    assert audit_rows(db, profile)[-1]["action"] == "carrier_unblock"


def test_per_se_word_among_fillers_opts_out_but_sets_no_carrier_block(
    db: psycopg.Connection,
) -> None:
    # Carriers block on keywords; "STOP NOW!!" is an opt-out we read, not one they act on.
    profile = new_profile()
    deliver(db, event("STOP NOW!!", profile=profile, to=TOLL_FREE))
    apply(db)
    assert status_of(db, profile) == "opted_out"
    assert not carrier_blocked(db, TOLL_FREE)
    assert [(r["action"], r["source"]) for r in audit_rows(db, profile)] == [("opt_out", "keyword")]


def test_profiles_are_independent(db: psycopg.Connection) -> None:
    first, second = new_profile(), new_profile()
    deliver(db, event("STOP", profile=first))
    apply(db)
    assert status_of(db, first) == "opted_out"
    assert status_of(db, second) is None


def test_late_older_event_is_audited_as_superseded_and_changes_nothing(
    db: psycopg.Connection,
) -> None:
    profile = new_profile()
    now = datetime.now(UTC)
    deliver(db, event("START", profile=profile, at=now))
    apply(db)
    deliver(db, event("STOP", profile=profile, at=now - timedelta(minutes=5)))
    apply(db)
    assert status_of(db, profile) == "opted_in"
    late = audit_rows(db, profile)[-1]
    assert (late["action"], late["superseded"]) == ("opt_out", True)
    assert (late["previous_status"], late["new_status"]) == ("opted_in", "opted_in")


def test_same_occurred_at_is_broken_by_event_id(db: psycopg.Connection) -> None:
    profile = new_profile()
    at = datetime(2026, 3, 1, tzinfo=UTC)
    stop, start = event("STOP", profile=profile, at=at), event("START", profile=profile, at=at)
    stop["data"]["id"], start["data"]["id"] = f"b-{uuid.uuid4()}", f"a-{uuid.uuid4()}"
    deliver(db, start)
    deliver(db, stop)
    apply(db)
    assert status_of(db, profile) == "opted_out"  # "b-…" sorts after "a-…"


def test_poison_event_fails_after_max_attempts_and_replays(db: psycopg.Connection) -> None:
    payload = event("STOP", profile=new_profile())
    deliver(db, payload)
    (pk,) = db.execute(
        "SELECT pk FROM webhook_events WHERE event_id = %s", (payload["data"]["id"],)
    ).fetchone()  # type: ignore[misc]
    statuses = [inbox.record_failure(db, pk, "boom", max_attempts=3) for _ in range(3)]
    assert statuses == ["pending", "pending", "failed"]
    failed = inbox.list_events(db, "failed", limit=1000)
    assert any(
        row["event_id"] == payload["data"]["id"] and row["last_error"] == "boom" for row in failed
    )
    inbox.replay_event(db, payload["data"]["id"])
    apply(db)
    assert status_of(db, payload["data"]["payload"]["messaging_profile_id"]) == "opted_out"


def test_processed_events_refuse_replay(db: psycopg.Connection) -> None:
    payload = event("STOP", profile=new_profile())
    deliver(db, payload)
    apply(db)
    with pytest.raises(inbox.ReplayRefused, match="only failed or invalid"):
        inbox.replay_event(db, payload["data"]["id"])


# --- any order, any number of deliveries: same state, one audit row per (event, action) -------

KEYS = [(p, n) for p in ("profile-a", "profile-b") for n in ("+13125550101", "+13125550102")]
TARGETS = [LONG_CODE, TOLL_FREE]
TEXTS = {"STOP": "STOP", "START": "START", "HELP": "HELP", "REVOKE": None}

event_spec = st.tuples(
    st.sampled_from(KEYS),
    st.sampled_from(TARGETS),
    st.sampled_from(sorted(TEXTS)),
    st.integers(min_value=0, max_value=5),  # few distinct times: plenty of ties
)


def expected_state(specs: list[tuple[Any, ...]]) -> tuple[dict[Any, str], dict[Any, bool]]:
    subscribers: dict[Any, tuple[Any, str]] = {}
    blocks: dict[Any, tuple[Any, bool]] = {}
    for index, ((profile, number), target, text, minute) in enumerate(specs):
        order = (minute, f"evt-{index:04d}")
        if text == "HELP":
            continue
        status = "opted_in" if text == "START" else "opted_out"
        if (profile, number) not in subscribers or order > subscribers[(profile, number)][0]:
            subscribers[(profile, number)] = (order, status)
        if target == TOLL_FREE and (
            (target, number) not in blocks or order > blocks[(target, number)][0]
        ):
            blocks[(target, number)] = (order, text != "START")
    return {k: v[1] for k, v in subscribers.items()}, {k: v[1] for k, v in blocks.items()}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=st.lists(event_spec, min_size=1, max_size=12),
    data=st.data(),
)
def test_any_order_and_any_number_of_deliveries_end_in_the_same_state(
    sync_database: str, specs: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    base = datetime(2026, 6, 1, tzinfo=UTC)
    run = uuid.uuid4().hex[:8]
    payloads = []
    for index, ((profile, number), target, text, minute) in enumerate(specs):
        payload = event(
            "Revoke" if text == "REVOKE" else text.lower(),
            profile=f"{profile}-{run}",
            to=target,
            number=number,
            autoresponse=None if text == "REVOKE" else text,
            at=base + timedelta(minutes=minute),
        )
        payload["data"]["id"] = f"evt-{index:04d}"  # ids order ties, as in expected_state
        payloads.append(payload)
    # Every event delivered 1-3 times, shuffled, applied in batches of random size.
    deliveries = [p for p in payloads for _ in range(data.draw(st.integers(1, 3)))]
    deliveries = data.draw(st.permutations(deliveries))
    batch = data.draw(st.integers(1, 5))
    with psycopg.connect(sync_database) as conn, conn.transaction(force_rollback=True):
        # ids are reused across examples, so each example lives in its own rolled-back tx
        conn.execute("DELETE FROM webhook_events WHERE event_id LIKE 'evt-%%'")
        for index, payload in enumerate(deliveries):
            deliver(conn, payload)
            if index % batch == 0:
                apply(conn, batch_size=batch)
        apply(conn, batch_size=batch)

        want_subscribers, want_blocks = expected_state(specs)
        for (profile, number), status in want_subscribers.items():
            assert status_of(conn, f"{profile}-{run}", number) == status
        for (toll_free, number), blocked in want_blocks.items():
            assert carrier_blocked(conn, toll_free, number) == blocked
        rows = conn.execute(
            "SELECT event_id, action, count(*) FROM audit_log WHERE messaging_profile_id LIKE %s"
            " GROUP BY event_id, action",
            (f"%-{run}",),
        ).fetchall()
        assert all(count == 1 for _, _, count in rows)
        audited = {event_id for event_id, _, _ in rows}
        assert audited == {p["data"]["id"] for p in payloads}


def test_stop_with_a_nul_character_is_honoured(db: psycopg.Connection) -> None:
    profile = new_profile()
    deliver(db, event("STOP\x00", profile=profile))
    apply(db)
    assert status_of(db, profile) == "opted_out"
    assert audit_rows(db, profile)[0]["text"] == "STOP\ufffd"


def test_stop_with_half_an_emoji_is_honoured(db: psycopg.Connection) -> None:
    # JSON may escape a lone UTF-16 surrogate, which no database text or UTF-8 can hold.
    profile = new_profile()
    payload = event("STOP \ud83d", profile=profile)
    assert b"\\ud83d" in encode(payload)
    deliver(db, payload)
    assert apply(db).processed == 1
    assert status_of(db, profile) == "opted_out"
    assert audit_rows(db, profile)[0]["text"] == "STOP \ufffd"


def test_drain_isolates_an_event_the_database_refuses_and_applies_the_rest(
    make_database: Callable[[], str],
) -> None:
    from psycopg_pool import ConnectionPool

    url = make_database()
    refused = "+13125550666"
    profile = new_profile()
    with psycopg.connect(url) as conn:
        # A real fault from the database for one subscriber, as a broken row would cause.
        conn.execute(f"ALTER TABLE subscribers ADD CHECK (phone_number <> '{refused}')")
        for number in ("+13125550101", refused, "+13125550102"):
            deliver(conn, event("STOP", profile=profile, number=number))
        conn.commit()
    with ConnectionPool(url, min_size=1, max_size=1, open=True) as pool:
        for _ in range(3):  # MAX_ATTEMPTS; the backoff is skipped by making it due again
            result = apply_events.drain(pool, batch_size=10, max_attempts=3)
            with pool.connection() as conn:
                conn.execute("UPDATE webhook_events SET next_attempt_at = now()")
    with psycopg.connect(url) as conn:
        assert status_of(conn, profile, "+13125550101") == "opted_out"
        assert status_of(conn, profile, "+13125550102") == "opted_out"
        ((status, attempts, error),) = conn.execute(
            "SELECT status, attempts, last_error FROM webhook_events"
            " WHERE convert_from(raw_body, 'UTF8') LIKE %s",
            (f"%{refused[1:]}%",),
        ).fetchall()
    assert (status, attempts) == ("failed", 3)
    assert "CheckViolation" in error
    assert result.failed == 1


# --- keyword engine rules through the worker -----------------------------------------------------


MEXICAN = "+525512345678"
ENGINE = KeywordEngine(parse_configs(KEYWORDS)[0])


def apply_with(conn: psycopg.Connection, policy: str = "review") -> apply_events.BatchResult:
    rules = apply_events.Rules(ENGINE, policy)
    total = apply_events.BatchResult()
    while claimed := inbox.claim_pending(conn, 100):
        total.add(apply_events.apply_claimed(conn, claimed, max_attempts=3, rules=rules))
    return total


def test_spanish_keywords_opt_a_mexican_number_out_and_back_in(db: psycopg.Connection) -> None:
    profile = new_profile()
    now = datetime.now(UTC)
    deliver(db, event("parar", profile=profile, number=MEXICAN, at=now))
    apply_with(db)
    assert status_of(db, profile, MEXICAN) == "opted_out"
    deliver(db, event("Inicio", profile=profile, number=MEXICAN, at=now + timedelta(seconds=1)))
    apply_with(db)
    assert status_of(db, profile, MEXICAN) == "opted_in"
    rows = audit_rows(db, profile)
    assert [(r["action"], r["source"], r["country"]) for r in rows] == [
        ("opt_out", "keyword", "MX"),
        ("opt_in", "keyword", "MX"),
    ]


def test_custom_op_is_audited_as_custom_and_changes_no_consent(db: psycopg.Connection) -> None:
    profile = new_profile()
    deliver(db, event("STOP", profile=profile, at=datetime(2026, 1, 1, tzinfo=UTC)))
    deliver(db, event("hours", profile=profile, at=datetime(2026, 1, 2, tzinfo=UTC)))
    apply_with(db)
    custom = audit_rows(db, profile)[-1]
    assert (custom["action"], custom["text"]) == ("custom", "hours")
    assert (custom["previous_status"], custom["new_status"]) == ("opted_out", "opted_out")


def test_possible_opt_out_holds_the_number_for_review(db: psycopg.Connection) -> None:
    profile = new_profile()
    deliver(db, fresh_ids(example("possible_opt_out"), profile))
    apply_with(db, "review")
    assert status_of(db, profile) == "review"
    (row,) = audit_rows(db, profile)
    assert (row["action"], row["source"], row["new_status"]) == (
        "possible_opt_out",
        "intent",
        "review",
    )
    (answer,) = can_send(db, profile, LONG_CODE, [SUBSCRIBER])
    assert (answer.allowed, answer.reasons) == (False, ["pending_review"])
    held = [r for r in list_pending(db, profile)]
    assert [(r["phone_number"], r["text"]) for r in held] == [
        (SUBSCRIBER, "please stop texting me, thanks")
    ]


def test_operator_confirms_a_review_and_the_number_is_opted_out(db: psycopg.Connection) -> None:
    profile = new_profile()
    deliver(db, event("please stop texting me", profile=profile))
    apply_with(db)
    decision = decide(db, profile, SUBSCRIBER, "confirm")
    assert (decision.previous_status, decision.new_status) == ("review", "opted_out")
    assert status_of(db, profile) == "opted_out"
    row = audit_rows(db, profile)[-1]
    assert (row["action"], row["source"], row["text"]) == (
        "review_confirmed",
        "operator",
        "please stop texting me",
    )
    with pytest.raises(ReviewError, match="not held for review"):
        decide(db, profile, SUBSCRIBER, "dismiss")


def test_operator_dismisses_a_review_and_the_last_consent_decides_again(
    db: psycopg.Connection,
) -> None:
    profile = new_profile()
    deliver(db, event("START", profile=profile, at=datetime(2026, 1, 1, tzinfo=UTC)))
    deliver(
        db, event("remove me from this list", profile=profile, at=datetime(2026, 1, 2, tzinfo=UTC))
    )
    apply_with(db)
    assert status_of(db, profile) == "review"
    decide(db, profile, SUBSCRIBER, "dismiss")
    assert status_of(db, profile) == "opted_in"
    assert audit_rows(db, profile)[-1]["action"] == "review_dismissed"
    assert list_pending(db, profile) == []


def test_explicit_start_after_a_possible_opt_out_releases_the_hold(db: psycopg.Connection) -> None:
    profile = new_profile()
    deliver(
        db, event("please stop texting me", profile=profile, at=datetime(2026, 1, 1, tzinfo=UTC))
    )
    deliver(db, event("START", profile=profile, at=datetime(2026, 1, 2, tzinfo=UTC)))
    apply_with(db)
    assert status_of(db, profile) == "opted_in"


def test_possible_opt_out_never_weakens_an_opt_out(db: psycopg.Connection) -> None:
    profile = new_profile()
    deliver(db, event("STOP", profile=profile, at=datetime(2026, 1, 1, tzinfo=UTC)))
    deliver(
        db, event("please stop texting me", profile=profile, at=datetime(2026, 1, 2, tzinfo=UTC))
    )
    apply_with(db)
    assert status_of(db, profile) == "opted_out"
    assert list_pending(db, profile) == []


def test_policy_opt_out_treats_intent_as_an_opt_out_without_carrier_block(
    db: psycopg.Connection,
) -> None:
    profile = new_profile()
    deliver(db, event("please stop texting me", profile=profile, to=TOLL_FREE))
    apply_with(db, "opt_out")
    assert status_of(db, profile) == "opted_out"
    assert not carrier_blocked(db, TOLL_FREE)
    (row,) = audit_rows(db, profile)
    assert (row["action"], row["source"]) == ("opt_out", "intent")


def test_policy_ignore_keeps_intent_as_an_ordinary_message(db: psycopg.Connection) -> None:
    profile = new_profile()
    deliver(db, event("please stop texting me", profile=profile))
    result = apply_with(db, "ignore")
    assert result.outcomes == {"ordinary": 1}
    assert status_of(db, profile) is None and audit_rows(db, profile) == []


INTENT_KEYS = KEYS[:2]


def expected_with_review(specs: list[tuple[Any, ...]]) -> dict[Any, str]:
    consent: dict[Any, tuple[Any, str]] = {}
    review: dict[Any, Any] = {}
    for index, (key, text, minute) in enumerate(specs):
        order = (minute, f"evt-{index:04d}")
        if text == "INTENT":
            if key not in review or order > review[key]:
                review[key] = order
        elif key not in consent or order > consent[key][0]:
            consent[key] = (order, "opted_in" if text == "START" else "opted_out")
    result = {}
    for key in set(consent) | set(review):
        status = consent.get(key, (None, "unknown"))[1]
        if (
            status != "opted_out"
            and key in review
            and (key not in consent or review[key] > consent[key][0])
        ):
            status = "review"
        result[key] = status
    return result


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=st.lists(
        st.tuples(
            st.sampled_from(INTENT_KEYS),
            st.sampled_from(["STOP", "START", "INTENT"]),
            st.integers(0, 4),
        ),
        min_size=1,
        max_size=10,
    ),
    data=st.data(),
)
def test_review_holds_end_in_the_same_state_in_any_order(
    sync_database: str, specs: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    base = datetime(2026, 7, 1, tzinfo=UTC)
    run = uuid.uuid4().hex[:8]
    payloads = []
    for index, ((profile, number), text, minute) in enumerate(specs):
        words = "please stop texting me" if text == "INTENT" else text
        payload = event(
            words, profile=f"{profile}-{run}", number=number, at=base + timedelta(minutes=minute)
        )
        payload["data"]["id"] = f"evt-{index:04d}"
        payloads.append(payload)
    deliveries = data.draw(st.permutations([p for p in payloads for _ in range(2)]))
    with psycopg.connect(sync_database) as conn, conn.transaction(force_rollback=True):
        conn.execute("DELETE FROM webhook_events WHERE event_id LIKE 'evt-%%'")
        for payload in deliveries:
            deliver(conn, payload)
            if data.draw(st.booleans()):
                apply_with(conn)
        apply_with(conn)
        for (profile, number), status in expected_with_review(specs).items():
            assert status_of(conn, f"{profile}-{run}", number) == status


@pytest.mark.parametrize("to", [LONG_CODE, TOLL_FREE])
def test_a_new_key_inserted_meanwhile_by_another_transaction_is_read_and_applied_again(
    sync_database: str, to: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Another worker inserts the subscriber (and carrier block) row this batch is about to
    # create, and commits only once this batch is waiting on it: the batch must not lose its
    # STOP, and must start from the row the other one wrote.
    import threading

    profile, number = new_profile(), f"+1312555{uuid.uuid4().int % 10000:04d}"
    earlier = datetime.now(UTC) - timedelta(minutes=5)
    with psycopg.connect(sync_database) as setup:
        deliver(setup, event("STOP", profile=profile, to=to, number=number))
        setup.commit()
    with psycopg.connect(sync_database) as other, psycopg.connect(sync_database) as ours:
        other.execute(
            "INSERT INTO subscribers (messaging_profile_id, phone_number, status, consent_status,"
            " last_occurred_at, last_event_id) VALUES (%s, %s, 'opted_in', 'opted_in', %s, 'x')",
            (profile, number, earlier),
        )
        other.execute(
            "INSERT INTO carrier_blocks (toll_free_number, phone_number, blocked, since,"
            " last_occurred_at, last_event_id) VALUES (%s, %s, false, %s, %s, 'x')",
            (TOLL_FREE, number, earlier, earlier),
        )
        results: list[apply_events.BatchResult] = []
        worker = threading.Thread(target=lambda: results.append(apply(ours)))
        with caplog.at_level("INFO", logger="app.services.apply_events"):
            worker.start()
            worker.join(timeout=1.0)
            assert worker.is_alive(), "the batch should be waiting on the uncommitted row"
            other.commit()
            worker.join(timeout=30)
        ours.commit()
        assert results and results[0].processed == 1
        assert "inserted concurrently; applying again" in caplog.text
        rows = [r for r in audit_rows(ours, profile) if r["action"] == "opt_out"]
        assert [(r["previous_status"], r["new_status"]) for r in rows] == [
            ("opted_in", "opted_out")
        ]
        assert status_of(ours, profile, number) == "opted_out"
        assert carrier_blocked(ours, TOLL_FREE, number) == (to == TOLL_FREE)


def test_an_event_leased_to_a_worker_is_applied_though_another_claim_still_holds_its_lock(
    make_database: Callable[[], str],
) -> None:
    """Worker B's claim read the event while it was due, then found it leased to worker A:
    B does not return it but keeps its row lock until B's transaction ends. A must wait for
    that lock, not skip the event (a skipped event waits out its lease, unapplied)."""
    url = make_database()
    with psycopg.connect(url) as a, psycopg.connect(url) as b:
        deliver(a, event("STOP", profile=new_profile()))
        a.commit()
        (due,) = inbox.claim_due(a, 10)
        b_returned: list[Any] = []
        b_claims = threading.Thread(
            target=lambda: b_returned.extend(
                b.execute(
                    "SELECT pk FROM webhook_events WHERE status = 'pending'"
                    " AND next_attempt_at <= clock_timestamp() AND pg_sleep(0.5) IS NOT NULL"
                    " FOR UPDATE SKIP LOCKED"
                ).fetchall()
            )
        )
        b_claims.start()  # its snapshot sees the event due; it reaches the row after A commits
        time.sleep(0.2)
        assert inbox.count_attempts(a, [due.pk]) == [due.pk]
        a.commit()
        b_claims.join()
        assert b_returned == []  # no longer due: not returned, yet still locked by B
        b_ends = threading.Timer(0.3, b.commit)
        b_ends.start()
        claimed = inbox.claim_events(a, [due.pk])
        b_ends.join()
        assert [event.pk for event in claimed] == [due.pk]
        a.rollback()
