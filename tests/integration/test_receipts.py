"""Delivery receipts without an error (issue 19): kept compactly in daily partitions of
delivery_receipts, answered `duplicate` when redelivered, and dropped a whole day at a time
after RECEIPT_RETENTION_HOURS."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from nacl.signing import SigningKey
from werkzeug.serving import make_server

from app.cli import main
from app.config import Settings
from app.devtools.simulate import encode, sign
from app.services import operations
from app.store import receipts
from app.web import create_app
from tests.conftest import example, fresh_ids, post_webhook


def retention(
    conn: psycopg.Connection, receipt_hours: int, dry_run: bool = False
) -> operations.Retention:
    return operations.apply_retention(conn, 90, receipt_hours, dry_run)


@pytest.fixture
def fresh(make_database: Callable[[], str], settings: Settings) -> tuple[str, FlaskClient]:
    url = make_database()
    return url, create_app(replace(settings, database_url=url), {"TESTING": True}).test_client()


def rows(url: str, table: str, event_id: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE event_id = %s", (event_id,))
        return int(row.fetchone()[0])  # type: ignore[index]


def test_a_receipt_without_an_error_is_kept_compactly_and_a_redelivery_is_a_duplicate(
    fresh: tuple[str, FlaskClient], signing_key: SigningKey
) -> None:
    url, client = fresh
    receipt = fresh_ids(example("message_finalized"))
    event_id = receipt["data"]["id"]
    with psycopg.connect(url, autocommit=True) as conn:
        for name in receipts.PARTITIONS.days(conn):  # beat has been away: the receiver
            receipts.PARTITIONS.detach_and_drop(conn, name)  # makes today's
    first = post_webhook(client, receipt, signing_key)
    assert (first.status_code, first.get_json()) == (200, {"status": "ignored"})
    again = post_webhook(client, receipt, signing_key)
    assert (again.status_code, again.get_json()) == (200, {"status": "duplicate"})
    assert rows(url, "delivery_receipts", event_id) == 1
    assert rows(url, "webhook_events", event_id) == 0  # no body kept, not in the inbox
    with psycopg.connect(url) as conn:
        today = receipts.PARTITIONS.name(datetime.now(UTC).date())
        assert today in receipts.PARTITIONS.days(conn)
    # A receipt whose error may be an opt-out still waits in the inbox, body and all.
    refused = fresh_ids(example("message_finalized_stop_block"))
    answer = post_webhook(client, refused, signing_key)
    assert answer.get_json() == {"status": "accepted"}
    assert rows(url, "webhook_events", refused["data"]["id"]) == 1
    assert rows(url, "delivery_receipts", refused["data"]["id"]) == 0


def test_a_day_of_receipts_goes_as_one_partition_drop_after_the_retention(
    make_database: Callable[[], str],
) -> None:
    url = make_database()
    old_day = datetime.now(UTC).date() - timedelta(days=4)
    with psycopg.connect(url, autocommit=True) as conn:
        for name in receipts.PARTITIONS.days(conn):
            receipts.PARTITIONS.detach_and_drop(conn, name)
        created = retention(conn, receipt_hours=72).created
        assert [receipts.PARTITIONS.day_of(name) for name in created if "receipts" in name] == [
            datetime.now(UTC).date() + timedelta(days=ahead) for ahead in range(3)
        ]
        start = datetime(old_day.year, old_day.month, old_day.day, tzinfo=UTC)
        old = receipts.PARTITIONS.name(old_day)
        bounds = f"FROM ('{start.isoformat()}') TO ('{start + timedelta(days=1):%Y-%m-%d}Z')"
        conn.execute(f"CREATE TABLE {old} PARTITION OF delivery_receipts FOR VALUES {bounds}")
        conn.execute(
            "INSERT INTO delivery_receipts (event_id, event_type, received_at)"
            " SELECT 'old-' || g, 'message.sent', %s FROM generate_series(1, 1000) g",
            (start + timedelta(hours=12),),
        )
        dry = retention(conn, receipt_hours=72, dry_run=True)
        assert dry.receipt_days == [old] and old in receipts.PARTITIONS.days(conn)
        assert retention(conn, receipt_hours=120).receipt_days == []  # 5 days
        kept = retention(conn, receipt_hours=72)
        assert (kept.created, kept.receipt_days) == ([], [old])
        assert old not in receipts.PARTITIONS.days(conn)
        assert conn.execute("SELECT to_regclass(%s)", (old,)).fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM delivery_receipts").fetchone() == (0,)


def test_events_prune_reports_the_days_of_receipts_it_drops(
    make_database: Callable[[], str],
) -> None:
    url = make_database()
    env = {"DATABASE_URL": url, "REDIS_URL": "", "RECEIPT_RETENTION_HOURS": "48"}
    result = CliRunner().invoke(main, ["events", "prune", "--dry-run"], env=env)
    assert result.exit_code == 0, result.output
    assert "would drop 0 day(s) of delivery receipts (RECEIPT_RETENTION_HOURS=48)" in result.output


@pytest.fixture
def two_processes(
    make_database: Callable[[], str], settings: Settings
) -> Iterator[tuple[list[str], str]]:
    """Two apps (each its own group committer, as two web processes have) on one fresh
    database, behind threaded HTTP servers."""
    url = make_database()
    servers = []
    for _ in range(2):
        server = make_server(
            "127.0.0.1", 0, create_app(replace(settings, database_url=url)), threaded=True
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield [f"http://127.0.0.1:{s.server_port}/webhooks/messaging" for s in servers], url
    for server in servers:
        server.shutdown()


def test_one_receipt_sent_to_two_processes_at_once_is_kept_once(
    two_processes: tuple[list[str], str], signing_key: SigningKey
) -> None:
    endpoints, url = two_processes
    body = encode(fresh_ids(example("message_finalized")))
    with psycopg.connect(url, autocommit=True) as conn:
        receipts.PARTITIONS.ensure(conn)

    def post(endpoint: str) -> str:
        request = urllib.request.Request(endpoint, data=body, headers=sign(body, signing_key))
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.read().decode()

    with psycopg.connect(url) as blocker, ThreadPoolExecutor(4) as senders:
        # Both inserts wait behind this lock, then race for the same event id.
        blocker.execute("LOCK TABLE delivery_receipts IN SHARE MODE")
        sent = [senders.submit(post, endpoint) for endpoint in endpoints * 2]
        time.sleep(0.3)
        blocker.commit()
        answers = sorted(future.result() for future in sent)
    assert answers == ['{"status":"duplicate"}'] * 3 + ['{"status":"ignored"}']
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM delivery_receipts").fetchone() == (1,)
