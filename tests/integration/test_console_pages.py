"""The console's pages past sign-in (spec §14): a subscriber's state and history, failed
events replayed, exports by date range, endpoints tested, and the overview's chart, time to
honour and chain status. Each action is recorded with the operator's name."""

from __future__ import annotations

import csv
import io
import random
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from flask.testing import FlaskClient

from app.config import Settings
from app.devtools.simulate import message_received
from app.services import outbound
from app.store import audit_log, subscribers
from tests.conftest import (
    apply_received,
    drain_every_attempt,
    failed_event,
    new_profile,
)
from tests.console import console_client, csrf, figure, log_in
from tests.webhook_receiver import webhook_receiver

TOLL_FREE = "+18885550123"


@pytest.fixture
def console(settings: Settings) -> FlaskClient:
    client = console_client(settings)
    log_in(client)
    return client


def unique_number() -> str:
    return f"+1312{random.randrange(2_000_000, 9_999_999)}"


def actions_of(url: str, action: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT operator, target, detail FROM operator_actions WHERE action = %s ORDER BY id",
            (action,),
        ).fetchall()
    return [(operator, target, detail) for operator, target, detail in rows]


def test_a_subscriber_shows_each_profile_carrier_blocks_and_every_audit_row(
    console: FlaskClient, settings: Settings
) -> None:
    number, profile = unique_number(), new_profile()
    texts = [("STOP", 0), ("START", 1)]
    apply_received(
        settings.database_url or "",
        [
            message_received(
                text=text,
                from_number=number,
                to_number=TOLL_FREE,
                profile_id=profile,
                occurred_at=datetime.now(UTC) - timedelta(minutes=5 - minutes),
            )
            for text, minutes in texts
        ],
    )
    typed = f"+1 ({number[2:5]}) {number[5:8]}-{number[8:]}"  # found however it is typed
    answer = console.get("/console/subscribers", query_string={"phone": typed})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and f"{number} on each messaging profile" in page
    assert f"<td>{profile}</td>" in page and 'data-status="opted_in"' in page
    assert f"<td>{TOLL_FREE}</td>" in page  # the toll-free carrier block (lifted by START)
    history = page[page.index('id="history"') :]
    rows = re.findall(r"<tr>\s*<td>(\d+)</td>(.*?)</tr>", history, re.S)
    cells = [re.findall(r"<td>(.*?)</td>", row, re.S) for _, row in rows]
    assert [(c[2], c[3], c[4]) for c in cells if c[1] == profile] == [
        ("opt_out", "STOP", "keyword"),
        ("carrier_block", "STOP", "keyword"),
        ("opt_in", "START", "keyword"),
        ("carrier_unblock", "START", "keyword"),
    ]
    assert re.search(r"<td>\d+ ms</td>|<td>[\d.]+ s</td>", history)  # time to honour

    unseen = console.get("/console/subscribers", query_string={"phone": unique_number()})
    assert unseen.status_code == 200 and "has never been seen." in unseen.get_data(as_text=True)
    bad = console.get("/console/subscribers", query_string={"phone": "call me"})
    assert bad.status_code == 400
    assert "&#39;call me&#39; is not in E.164 form" in bad.get_data(as_text=True)


def test_a_failed_event_is_replayed_from_the_events_page_and_the_replay_recorded(
    make_database: Callable[[], str], settings: Settings
) -> None:
    url = make_database()
    event_id = failed_event(url, unique_number())
    console = console_client(replace(settings, database_url=url))
    log_in(console)
    page = console.get("/console/events").get_data(as_text=True)
    assert f"<code>{event_id}</code>" in page and "CheckViolation" in page
    assert f'aria-label="Replay {event_id}"' in page
    form = {"event_id": event_id}
    assert console.post("/console/events/replay", data=form).status_code == 400  # no CSRF
    token = csrf(console, "/console/events")
    replayed = console.post("/console/events/replay", data=form | {"csrf_token": token})
    assert replayed.headers["Location"] == "/console/events"
    assert f"{event_id} is queued again" in console.get("/console/events").get_data(as_text=True)
    drain_every_attempt(url, max_attempts=1)
    with psycopg.connect(url) as conn:
        status = conn.execute(
            "SELECT status FROM webhook_events WHERE event_id = %s", (event_id,)
        ).fetchone()
    assert status == ("processed",)
    ((operator, target, _),) = actions_of(url, "replay_event")
    assert operator.startswith("admin-") and target == event_id
    again = console.post("/console/events/replay", data=form | {"csrf_token": token})
    assert again.status_code == 302
    assert "only failed or invalid events replay" in console.get("/console/events").get_data(
        as_text=True
    )


def test_an_export_downloads_the_rows_of_its_date_range(
    make_database: Callable[[], str], settings: Settings
) -> None:
    url = make_database()
    profile = new_profile()
    apply_received(
        url,
        [
            message_received(
                text="STOP", from_number=unique_number(), to_number=TOLL_FREE, profile_id=profile
            )
            for _ in range(3)
        ],
    )
    with psycopg.connect(url) as conn:  # one row recorded two days ago, outside the range
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        conn.execute(
            "UPDATE audit_log SET recorded_at = recorded_at - interval '2 days' WHERE seq = 1"
        )
        conn.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")
        conn.commit()
    console = console_client(replace(settings, database_url=url))
    log_in(console)
    assert 'name="since" type="date"' in console.get("/console/exports").get_data(as_text=True)
    today = datetime.now(UTC).date().isoformat()
    answer = console.get(
        "/console/exports/download",
        query_string={"kind": "audit", "format": "csv", "since": today, "until": today},
    )
    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"].startswith(
        'attachment; filename="optout-sync-audit-'
    )
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert [row["seq"] for row in rows] == [str(seq) for seq in range(2, 7)]
    ((operator, target, detail),) = actions_of(url, "export")
    assert operator.startswith("admin-") and target == "audit"
    assert detail == f"csv {today}..{today} profile=all"
    bad = console.get("/console/exports/download", query_string={"since": "yesterday"})
    assert bad.status_code == 400 and "since must be a date" in bad.get_data(as_text=True)
    backwards = console.get(
        "/console/exports/download", query_string={"since": today, "until": "2000-01-01"}
    )
    assert backwards.status_code == 400 and "since is after until" in backwards.get_data(
        as_text=True
    )


def test_endpoints_show_their_health_and_attempts_and_test_sends_a_signed_ping(
    make_database: Callable[[], str], settings: Settings
) -> None:
    url = make_database()
    with webhook_receiver() as receiver, psycopg.connect(url) as conn:
        with conn.transaction():
            endpoint = outbound.add_endpoint(conn, receiver.url, None, None, allow_private=True)
        console = console_client(replace(settings, database_url=url, endpoints_allow_private=True))
        log_in(console)
        page = console.get("/console/endpoints").get_data(as_text=True)
        assert receiver.url in page and "No deliveries attempted yet." in page
        assert re.search(rf'data-endpoint-status="{endpoint.id}">\s*healthy', page)
        receiver.answers = [503]
        token = csrf(console, "/console/endpoints")
        tested = console.post(
            "/console/endpoints/test", data={"endpoint_id": endpoint.id, "csrf_token": token}
        )
        assert tested.headers["Location"] == "/console/endpoints"
        page = console.get("/console/endpoints").get_data(as_text=True)
        assert f"Test ping to {endpoint.id}: HTTP 503 in " in page
        (ping,) = receiver.received
        assert b'"type":"ping"' in ping.body and ping.headers["webhook-signature"].startswith("v1,")
        ((operator, target, detail),) = actions_of(url, "test_endpoint")
        assert operator.startswith("admin-") and (target, detail) == (endpoint.id, "HTTP 503")


def test_the_overview_charts_opt_outs_per_day_and_shows_time_to_honour_and_chain_status(
    make_database: Callable[[], str], settings: Settings
) -> None:
    url = make_database()
    console = console_client(replace(settings, database_url=url))
    log_in(console)
    empty = console.get("/console/").get_data(as_text=True)
    assert "Not verified yet: run <code>optout-sync audit verify</code>" in empty
    assert len(re.findall(r"<rect ", empty)) == 30

    apply_received(
        url,
        [
            message_received(text=text, from_number=unique_number(), to_number="+13125550100")
            for text in ("STOP", "STOP", "START", "unsubscribe me")
        ],
    )
    with psycopg.connect(url) as conn, conn.transaction():
        audit_log.record_check(conn, audit_log.verify(conn))
        # The daily counts the chart reads agree with the log they summarise.
        kept = conn.execute("SELECT day, action, rows FROM audit_daily").fetchall()
        recounted = conn.execute(
            "SELECT (recorded_at AT TIME ZONE 'UTC')::date, action, count(*) FROM audit_log"
            " WHERE NOT superseded GROUP BY 1, 2"
        ).fetchall()
    assert sorted(kept) == sorted(recounted) and kept
    page = console.get("/console/").get_data(as_text=True)
    today = datetime.now(UTC).date().isoformat()
    bars = dict(re.findall(r'data-day="([\d-]+)" data-value="(\d+)"', page))
    assert len(bars) == 30 and bars[today] == "2"  # two STOPs; START and a question are not
    assert sum(map(int, bars.values())) == 2 and "2 opt-outs (texted," in page
    assert re.search(r'data-figure="honour_p50">[\d.]+ (ms|s)<', page)
    assert figure(page, "honour_over") == 0
    assert "From receiving each of 4 consent events" in page  # the question is one too
    assert f"Intact: {figure(page, 'chain_seq')} rows verified" in page
    assert re.search(r"<td>admin-[0-9a-f]{8}</td><td>login</td>", page)


def test_a_large_table_shows_estimated_counts_and_an_exact_review_count(
    make_database: Callable[[], str],
) -> None:
    url = make_database()
    rows = subscribers.EXACT_COUNT_LIMIT + 10_000
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO subscribers (messaging_profile_id, phone_number, status)"
            " SELECT 'p', '+1312' || (2000000 + g), CASE WHEN g %% 1000 = 0 THEN 'review'"
            "   WHEN g %% 4 = 0 THEN 'opted_out' ELSE 'opted_in' END"
            " FROM generate_series(1, %s) g",
            (rows,),
        )
        assert subscribers.status_counts(conn) == (subscribers.count_by_status(conn), False)
        conn.execute("ANALYZE subscribers")
        exact = subscribers.count_by_status(conn)
        estimate, estimated = subscribers.status_counts(conn)
    assert estimated and estimate["review"] == exact["review"] == rows // 1000
    for status in ("opted_in", "opted_out"):
        assert abs(estimate[status] - exact[status]) < 0.05 * rows, (status, estimate, exact)


def test_the_drift_count_and_an_endpoints_attempts_can_use_their_indexes(
    conn: psycopg.Connection,
) -> None:
    conn.execute("SET LOCAL enable_seqscan = off")  # only a usable index is left to choose
    # The very statement drift_count runs: its written-out predicate must imply the index's.
    statement = f"EXPLAIN SELECT count(*) {audit_log._DRIFT}"
    drift = "\n".join(
        row[0] for row in conn.execute(statement, audit_log._drift_params(None, None))
    )
    assert "audit_log_drift" in drift, drift
    attempts = "\n".join(
        row[0]
        for row in conn.execute(
            "EXPLAIN SELECT * FROM delivery_attempts WHERE endpoint_id = 'ep'"
            " ORDER BY attempted_at DESC LIMIT 5"
        )
    )
    assert "delivery_attempts_by_endpoint" in attempts, attempts
