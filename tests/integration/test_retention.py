"""Retention keeps the inbox as big as its window: processed and ignored events leave after
WEBHOOK_RETENTION_DAYS, rows and all; pending, failed and invalid ones stay for replay."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import psycopg
from click.testing import CliRunner
from nacl.signing import SigningKey

from app.cli import main
from app.store import inbox
from app.web import create_app
from tests.conftest import (
    example,
    fresh_ids,
    post_webhook,
    settings_for,
)


def record_aged(conn: psycopg.Connection, status: str, days_old: int) -> str:
    event_id = f"{status}-{days_old}d-{uuid.uuid4()}"
    inbox.record_event(
        conn,
        event_id=event_id,
        event_type="message.received",
        status=status,
        raw_body=b'{"data": {}}',
        signed_at=None,
    )
    _age(conn, event_id, days_old)
    return event_id


def _age(conn: psycopg.Connection, event_id: str, days_old: int) -> None:
    conn.execute(
        "UPDATE webhook_events SET received_at = clock_timestamp() - make_interval(days => %s)"
        " WHERE event_id = %s",
        (days_old, event_id),
    )


def kept_event_ids(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {row[0] for row in conn.execute("SELECT event_id FROM webhook_events")}


def test_prune_removes_old_processed_and_ignored_rows_keeps_the_rest_and_duplicates_still_answer(
    make_database: Callable[[], str], servers: dict[str, str], signing_key: SigningKey
) -> None:
    url = make_database()
    settings = settings_for(url, servers["redis"], signing_key, "unused-queue")
    client = create_app(settings, {"TESTING": True}).test_client()
    # Events of another type (a voice event to a shared URL, say): kept as `ignored`.
    old_ignored, recent_ignored = (fresh_ids(example("message_finalized")) for _ in range(2))
    for event in (old_ignored, recent_ignored):
        event["data"]["event_type"] = "call.hangup"
        assert post_webhook(client, event, signing_key).get_json() == {"status": "ignored"}
    with psycopg.connect(url) as conn:
        _age(conn, old_ignored["data"]["id"], 91)
        _age(conn, recent_ignored["data"]["id"], 89)
        old_processed = record_aged(conn, "processed", 91)
        recent_processed = record_aged(conn, "processed", 89)
        waiting_for_replay = {
            record_aged(conn, status, 400) for status in ("pending", "failed", "invalid")
        }
    before = kept_event_ids(url)
    env = {"DATABASE_URL": url, "WEBHOOK_RETENTION_DAYS": "90"}

    dry = CliRunner().invoke(main, ["events", "prune", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert re.fullmatch(
        r"would remove 1 processed and 1 ignored events received before \S+"
        r" \(WEBHOOK_RETENTION_DAYS=90\)\n"
        r"would drop 0 day\(s\) of the inbox, keeping 0 pending, failed or invalid events for"
        r" replay\n"
        r"would drop 0 day\(s\) of delivery receipts \(RECEIPT_RETENTION_HOURS=72\)\n",
        dry.output,
    )
    assert kept_event_ids(url) == before

    done = CliRunner().invoke(main, ["events", "prune"], env=env)
    assert done.exit_code == 0, done.output
    assert done.output.startswith("removed 1 processed and 1 ignored events received before ")
    assert kept_event_ids(url) == before - {old_ignored["data"]["id"], old_processed}
    assert {recent_ignored["data"]["id"], recent_processed} | waiting_for_replay <= kept_event_ids(
        url
    )

    # Inside the window a redelivery still finds its event id.
    assert post_webhook(client, recent_ignored, signing_key).get_json() == {"status": "duplicate"}


def test_prune_works_through_many_batches(make_database: Callable[[], str]) -> None:
    url = make_database()
    with psycopg.connect(url) as conn:
        for _ in range(7):
            record_aged(conn, "ignored", 30)
        recent = record_aged(conn, "ignored", 1)
        conn.commit()
        result = inbox.prune(conn, older_than_days=7, batch=2)
    assert result.removed == {"processed": 0, "ignored": 7}
    assert kept_event_ids(url) == {recent}
