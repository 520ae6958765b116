"""GET /v1/changes: the audit log as a feed, its seq the cursor (spec §11)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import psycopg
import pytest
from flask.testing import FlaskClient

from app.config import Settings, parse_api_tokens
from app.consent.intake import ConsentRecord
from app.consent.values import Channel
from app.services import intake
from app.services.exports import AUDIT_COLUMNS
from app.web import create_app

READ = {"Authorization": "Bearer reader"}


def _client(url: str, settings: Settings) -> FlaskClient:
    tokens = parse_api_tokens("read:reader")
    return create_app(replace(settings, database_url=url, api_tokens=tokens)).test_client()


def _opt_out(conn: psycopg.Connection, number: str, key: str | None = None) -> None:
    record = ConsentRecord(
        number, "feed", "opt_out", datetime.now(UTC), Channel.AGENT, key, None, None
    )
    with conn.transaction():
        intake.apply_records(conn, [record])


def test_rows_come_in_seq_order_with_the_exports_fields_and_a_cursor(
    make_database: Callable[[], str], settings: Settings
) -> None:
    url = make_database()
    with psycopg.connect(url, autocommit=True) as conn:
        for index in range(5):
            _opt_out(conn, f"+1312555{index:04d}")
    client = _client(url, settings)

    first = client.get("/v1/changes?limit=3", headers=READ).get_json()
    assert [row["seq"] for row in first["changes"]] == [1, 2, 3] and first["next"] == 3
    assert list(first["changes"][0]) == [column.name for column in AUDIT_COLUMNS]
    assert first["changes"][0]["phone_number"] == "+13125550000"
    assert first["changes"][0]["channel"] == "agent"
    assert first["changes"][0]["occurred_at"].endswith("+00:00")

    rest = client.get(f"/v1/changes?after={first['next']}&limit=3", headers=READ).get_json()
    assert [row["seq"] for row in rest["changes"]] == [4, 5] and rest["next"] == 5
    empty = client.get("/v1/changes?after=5", headers=READ).get_json()
    assert empty == {"changes": [], "next": 5}


def test_wait_answers_as_soon_as_a_row_is_written(
    make_database: Callable[[], str], settings: Settings
) -> None:
    url = make_database()
    client = _client(url, settings)

    def write_later() -> None:
        time.sleep(0.5)
        with psycopg.connect(url, autocommit=True) as conn:
            _opt_out(conn, "+13125550100")

    writer = threading.Thread(target=write_later)
    started = time.monotonic()
    writer.start()
    answer = client.get("/v1/changes?after=0&wait=20", headers=READ).get_json()
    waited = time.monotonic() - started
    writer.join()
    assert [row["phone_number"] for row in answer["changes"]] == ["+13125550100"]
    assert 0.4 < waited < 20  # it waited for the row, and not for the whole 20 s

    started = time.monotonic()
    assert client.get("/v1/changes?after=1&wait=0.5", headers=READ).get_json() == {
        "changes": [],
        "next": 1,
    }
    assert time.monotonic() - started >= 0.4  # nothing came: it waited before answering


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("after=-1", "after must be between 0 and"),
        ("after=x", "after must be an integer"),
        ("limit=0", "limit must be between 1 and 10000"),
        ("limit=10001", "limit must be between 1 and 10000"),
        ("wait=31", "wait must be between 0 and 30"),
        ("wait=soon", "wait must be a number"),
    ],
)
def test_a_bad_parameter_is_named(
    database_url: str, settings: Settings, query: str, problem: str
) -> None:
    answer = _client(database_url, settings).get(f"/v1/changes?{query}", headers=READ)
    assert answer.status_code == 400
    assert answer.get_json()["error"].startswith(problem)


def test_the_cursor_skips_and_repeats_nothing_under_concurrent_writers(
    make_database: Callable[[], str], settings: Settings
) -> None:
    url = make_database()
    client = _client(url, settings)
    writers, per_writer = 4, 60
    done = threading.Event()

    def write(writer: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            for index in range(per_writer):
                _opt_out(conn, f"+1312{555 + writer}{index:04d}")

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    finisher = threading.Thread(target=lambda: ([t.join() for t in threads], done.set()))
    finisher.start()
    seen: list[int] = []
    cursor = 0
    while not (done.is_set() and cursor == writers * per_writer):
        page = client.get(f"/v1/changes?after={cursor}&limit=7", headers=READ).get_json()
        seen.extend(row["seq"] for row in page["changes"])
        cursor = page["next"]
    finisher.join()
    assert seen == list(range(1, writers * per_writer + 1))
