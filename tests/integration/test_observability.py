"""Poison events, metrics that operators alert on, and logs that never show whole numbers."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from dataclasses import replace

import psycopg
import pytest
from click.testing import CliRunner
from psycopg_pool import ConnectionPool

from app.cli import main
from app.config import Settings
from app.devtools.simulate import message_received
from app.logs import JsonFormatter, mask_numbers
from app.services import apply_events
from app.web import create_app
from tests.conftest import record_pending

POISONED = "+13125550666"


def sample(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not in /metrics")


def test_poison_event_fails_is_visible_and_replays_after_a_fix(
    make_database: Callable[[], str], settings: Settings
) -> None:
    url = make_database()
    with psycopg.connect(url) as conn:
        # A fault only this event hits, from the database itself, as a broken row would cause.
        conn.execute(
            f"ALTER TABLE subscribers ADD CONSTRAINT no_poison CHECK (phone_number <> '{POISONED}')"
        )
        for number in ("+13125550101", POISONED, "+13125550102"):
            payload = message_received(
                text="STOP", from_number=number, to_number="+17735550188", profile_id="poison"
            )
            record_pending(conn, payload, event_id=f"evt-{number}")
        conn.commit()
    with ConnectionPool(url, min_size=1, max_size=1, open=True) as pool:
        for _ in range(3):  # MAX_ATTEMPTS=3; make the backoff due at once
            apply_events.drain(pool, batch_size=10, max_attempts=3)
            with pool.connection() as conn:
                conn.execute("UPDATE webhook_events SET next_attempt_at = now()")
    client = create_app(replace(settings, database_url=url), {"TESTING": True}).test_client()
    text = client.get("/metrics").get_data(as_text=True)
    assert sample(text, 'optout_sync_inbox_events{status="failed"}') == 1
    assert sample(text, 'optout_sync_events_total{status="failed"}') == 1
    assert sample(text, 'optout_sync_events_total{status="processed"}') == 2  # never blocked
    env = {"DATABASE_URL": url, "REDIS_URL": "", "CELERY_BROKER_URL": ""}
    listed = CliRunner().invoke(main, ["events", "list", "--status", "failed"], env=env)
    assert f"evt-{POISONED}" in listed.output and "CheckViolation" in listed.output
    with psycopg.connect(url) as conn:  # the fix
        conn.execute("ALTER TABLE subscribers DROP CONSTRAINT no_poison")
        conn.commit()
    replayed = CliRunner().invoke(main, ["events", "replay", "--failed"], env=env)
    assert "queued 1 event(s)" in replayed.output
    with ConnectionPool(url, min_size=1, max_size=1, open=True) as pool:
        apply_events.drain(pool, batch_size=10, max_attempts=3)
    after = client.get("/metrics").get_data(as_text=True)
    assert sample(after, 'optout_sync_inbox_events{status="failed"}') == 0
    assert sample(after, 'optout_sync_events_total{status="processed"}') == 3
    assert sample(after, "optout_sync_inbox_oldest_pending_seconds") == 0


def test_metrics_still_answer_when_the_database_is_down(settings: Settings) -> None:
    down = replace(settings, database_url="postgresql://postgres@127.0.0.1:1/none")
    response = create_app(down, {"TESTING": True}).test_client().get("/metrics")
    assert response.status_code == 200
    assert "# database counters unavailable" in response.get_data(as_text=True)


def test_numbers_are_masked_but_for_their_last_four_digits() -> None:
    assert mask_numbers("from +13125550147 to +18885550123") == "from +*******0147 to +*******0123"
    assert mask_numbers("+525512345678 said STOP") == "+********5678 said STOP"
    # Times, offsets and ids are left alone.
    assert (
        mask_numbers("at 2026-11-20T16:00:00+00:00 id 12345678901")
        == "at 2026-11-20T16:00:00+00:00 id 12345678901"
    )


def test_logs_are_json_lines_with_numbers_masked_in_messages_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.masking")
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("bad number +13125550147")
        except ValueError:
            logger.error("event for %s failed", "+13125550147", exc_info=True)
    finally:
        logger.removeHandler(handler)
    entry = json.loads(stream.getvalue())
    assert entry["level"] == "error" and entry["message"] == "event for +*******0147 failed"
    assert "+13125550147" not in stream.getvalue()
    assert "+*******0147" in entry["exception"]


def test_honored_increments_are_cumulative_buckets_with_sum_and_count() -> None:
    from app.store.counters import HONORED_METRIC, honored_increments

    bucket = HONORED_METRIC + "_bucket"
    got = honored_increments([0.05, 0.3, 0.3, 7.0, 1e9])
    assert got[(bucket, 'le="0.05"')] == 1  # a bound is inclusive
    assert got[(bucket, 'le="0.1"')] == 1
    assert got[(bucket, 'le="0.5"')] == 3
    assert got[(bucket, 'le="10"')] == 4
    assert got[(bucket, 'le="864000"')] == 4
    assert got[(bucket, 'le="+Inf"')] == 5
    assert got[(HONORED_METRIC + "_count", "")] == 5
    assert got[(HONORED_METRIC + "_sum", "")] == pytest.approx(0.05 + 0.6 + 7.0 + 1e9)
    assert honored_increments([]) == {}
