"""The inbox in daily partitions (issue 19, migration 0016): a pk carries its UTC day, a day
past WEBHOOK_RETENTION_DAYS goes as one partition drop while what waits for replay is kept,
and an inbox from before the migration is attached whole and retired once emptied."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient
from nacl.signing import SigningKey
from psycopg_pool import ConnectionPool

from app.config import Settings
from app.devtools.simulate import encode, message_received
from app.services import apply_events, operations
from app.store import inbox, migrations, partitions
from app.web import create_app
from tests.conftest import apply_received, post_webhook, record_pending


@pytest.fixture
def fresh(make_database: Callable[[], str], settings: Settings) -> tuple[str, FlaskClient]:
    url = make_database()
    return url, create_app(replace(settings, database_url=url), {"TESTING": True}).test_client()


def stop() -> dict[str, Any]:
    return message_received(text="STOP", from_number="+13125550123", to_number="+17735550100")


def kept_row(conn: psycopg.Connection, message: dict[str, Any]) -> tuple[int, str]:
    """The inbox's (pk, status) of a message."""
    row = conn.execute(
        "SELECT pk, status FROM webhook_events WHERE event_id = %s", (message["data"]["id"],)
    ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def keep_on(
    conn: psycopg.Connection, received: datetime, status: str, event_id: str, body: bytes = b"{}"
) -> None:
    """An event kept on an earlier day, as the receiver kept it then."""
    conn.execute(
        "INSERT INTO webhook_events (pk, event_id, event_type, status, raw_body, received_at)"
        " VALUES (webhook_events_next_pk(%s), %s, 'message.received', %s, %s, %s)",
        (received, event_id, status, body, received),
    )


def day_of_pk(pk: int) -> int:
    return pk >> inbox.DAY_SHIFT


def test_the_receiver_makes_todays_partition_when_beat_is_late_and_pks_carry_the_day(
    fresh: tuple[str, FlaskClient], signing_key: SigningKey
) -> None:
    url, client = fresh
    with psycopg.connect(url, autocommit=True) as conn:
        for name in inbox.PARTITIONS.days(conn):
            inbox.PARTITIONS.detach_and_drop(conn, name)
    message = stop()
    assert post_webhook(client, message, signing_key).get_json() == {"status": "accepted"}
    assert post_webhook(client, message, signing_key).get_json() == {"status": "duplicate"}
    with psycopg.connect(url) as conn:
        assert inbox.PARTITIONS.name(partitions.today()) in inbox.PARTITIONS.days(conn)
        pk = kept_row(conn, message)[0]
    assert pk >= inbox.day_pk(partitions.today())
    assert pk < inbox.day_pk(partitions.today() + timedelta(days=1))


def test_a_redelivery_is_a_duplicate_inside_the_window_and_kept_again_after_it(
    fresh: tuple[str, FlaskClient], signing_key: SigningKey
) -> None:
    url, client = fresh
    inside, outside = stop(), stop()
    now = datetime.now(UTC)
    with psycopg.connect(url, autocommit=True) as conn:
        inbox.PARTITIONS.ensure(conn, days_back=inbox.RECENT_DAYS + 2)
        window = timedelta(days=inbox.RECENT_DAYS)
        keep_on(conn, now - window, "processed", inside["data"]["id"])
        keep_on(conn, now - window - timedelta(days=2), "processed", outside["data"]["id"])
    assert post_webhook(client, inside, signing_key).get_json() == {"status": "duplicate"}
    # Telnyx stops retrying within hours; an id this old is not looked for (see the README).
    assert post_webhook(client, outside, signing_key).get_json() == {"status": "accepted"}


def test_events_left_pending_for_days_are_claimed_by_the_sweepers_only(
    make_database: Callable[[], str],
) -> None:
    url = make_database()
    days_ago = timedelta(days=inbox.RECENT_DAYS + 2)
    old, new = stop(), stop()
    with psycopg.connect(url, autocommit=True) as conn:
        inbox.PARTITIONS.ensure(conn, days_back=days_ago.days)
        keep_on(conn, datetime.now(UTC) - days_ago, "pending", old["data"]["id"], encode(old))
        keep_on(conn, datetime.now(UTC), "pending", new["data"]["id"], encode(new))
    with ConnectionPool(url, min_size=1, max_size=1, open=True) as pool:
        nudged = apply_events.drain(pool, batch_size=10, max_attempts=3)
        with pool.connection() as conn:
            assert kept_row(conn, old)[1] == "pending" and kept_row(conn, new)[1] == "processed"
        swept = apply_events.drain(pool, batch_size=10, max_attempts=3, older_days=True)
        with pool.connection() as conn:
            assert kept_row(conn, old)[1] == "processed"
    assert (nudged.processed, swept.processed) == (1, 1)


def test_a_day_past_the_retention_goes_as_one_partition_drop_keeping_what_waits_for_replay(
    make_database: Callable[[], str],
) -> None:
    url = make_database()
    today = partitions.today()
    old_day, last_day = today - timedelta(days=92), today - timedelta(days=89)
    tag = uuid.uuid4().hex[:8]
    with psycopg.connect(url, autocommit=True) as conn:
        inbox.PARTITIONS.ensure(conn, days_back=92)
        noon = partitions.midnight(old_day) + timedelta(hours=12)
        conn.execute(
            "INSERT INTO webhook_events (pk, event_id, event_type, status, raw_body, received_at)"
            " SELECT webhook_events_next_pk(%s), %s || g, 'message.received', 'processed',"
            "   '{}', %s FROM generate_series(1, 1000) g",
            (noon, f"{tag}-processed-", noon),
        )
        for status in ("pending", "failed", "invalid"):
            keep_on(conn, noon, status, f"{tag}-{status}")
        keep_on(conn, partitions.midnight(last_day), "processed", f"{tag}-recent")
        expired = [inbox.PARTITIONS.name(old_day + timedelta(days=d)) for d in range(2)]

        dry = operations.apply_retention(conn, 90, 72, dry_run=True)
        assert (dry.inbox_days.partitions, dry.inbox_days.kept) == (expired, 3)
        assert set(expired) <= set(inbox.PARTITIONS.days(conn))

        done = operations.apply_retention(conn, 90, 72)
        assert (done.inbox_days.partitions, done.inbox_days.kept) == (expired, 3)
        assert done.removed.removed == {"processed": 0, "ignored": 0}  # no row deleted
        for name in expired:
            assert conn.execute("SELECT to_regclass(%s)", (name,)).fetchone() == (None,)
        left = conn.execute(
            "SELECT event_id, status, pk < 0, tableoid::regclass::text FROM webhook_events"
            " WHERE event_id LIKE %s ORDER BY event_id",
            (f"{tag}-%",),
        ).fetchall()
    assert left == [
        (f"{tag}-failed", "failed", True, "webhook_events_kept"),
        (f"{tag}-invalid", "invalid", True, "webhook_events_kept"),
        (f"{tag}-pending", "pending", True, "webhook_events_kept"),
        (f"{tag}-recent", "processed", False, inbox.PARTITIONS.name(last_day)),
    ]
    # What was kept still replays and is still claimed.
    with psycopg.connect(url) as conn:
        inbox.replay_event(conn, f"{tag}-failed")
        claimed = {event.event_id for event in inbox.claim_pending(conn, 10)}
    assert claimed == {f"{tag}-failed", f"{tag}-pending"}


@pytest.fixture
def inbox_before_0016(servers: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """A database migrated as 0.14.0 left it, whose inbox holds events."""
    name = f"optout_sync_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(servers["database"], autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = servers["database"].rsplit("/", 1)[0] + "/" + name
    for migration in migrations.discover():
        if migration.version < "0014":
            shutil.copy(migration.path, tmp_path)
    with psycopg.connect(url, autocommit=True) as conn:
        migrations.upgrade(conn, tmp_path)
    yield url
    with psycopg.connect(servers["database"], autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_an_inbox_from_before_0016_is_attached_whole_then_retired_once_emptied(
    inbox_before_0016: str, settings: Settings, signing_key: SigningKey
) -> None:
    url = inbox_before_0016
    earlier, waiting, newer = stop(), stop(), stop()
    apply_received(url, [earlier])
    with psycopg.connect(url) as conn:
        record_pending(conn, waiting)
        conn.execute(
            "INSERT INTO webhook_events (event_id, status, raw_body, received_at) SELECT"
            " 'old-' || g, 'ignored', '{}', now() - interval '100 days'"
            " FROM generate_series(1, 50) g"
        )
        conn.commit()
        old_pks = dict(conn.execute("SELECT event_id, pk FROM webhook_events").fetchall())
    with psycopg.connect(url, autocommit=True) as conn:
        # As the README says to do beforehand on a very large inbox: 0014 and 0015 then
        # find nothing left to do.
        conn.execute(
            "ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_pk_bound"
            " CHECK (pk >= 1 AND pk < 1099511627776) NOT VALID"
        )
        conn.execute("ALTER TABLE webhook_events VALIDATE CONSTRAINT webhook_events_pk_bound")
        assert migrations.upgrade(conn) == [
            "0014_inbox_pk_bound",
            "0015_inbox_pk_bound_validate",
            "0016_inbox_partitions",
        ]
        operations.ensure_partitions(conn)
        # Attached as it was: same rows and pks, its own indexes now the parent's.
        assert dict(conn.execute("SELECT event_id, pk FROM webhook_events").fetchall()) == old_pks
        attached = conn.execute(
            "SELECT i.inhrelid::regclass::text FROM pg_inherits i"
            " WHERE i.inhparent = 'webhook_events_pending'::regclass"
        ).fetchall()
        assert ("webhook_events_legacy_pending",) in attached

    client = create_app(replace(settings, database_url=url), {"TESTING": True}).test_client()
    assert post_webhook(client, earlier, signing_key).get_json() == {"status": "duplicate"}
    assert post_webhook(client, newer, signing_key).get_json() == {"status": "accepted"}
    with psycopg.connect(url) as conn:
        assert day_of_pk(kept_row(conn, newer)[0]) == day_of_pk(inbox.day_pk(partitions.today()))
        # The legacy partition's pending event is claimed and applied like any other.
        claimed = inbox.claim_pending(conn, 10)
        assert {event.event_id for event in claimed} == {
            waiting["data"]["id"],
            newer["data"]["id"],
        }
        apply_events.apply_claimed(conn, claimed, max_attempts=3)
        conn.commit()
        record_pending(conn, stop(), event_id="still-waiting")
        conn.execute(
            "UPDATE webhook_events SET pk = 999999, received_at = now() - interval '100 days'"
            " WHERE event_id = 'still-waiting'"
        )  # a pending event in the legacy partition, as one left by a broken deploy would be
        conn.commit()

    with psycopg.connect(url, autocommit=True) as conn:
        first = operations.apply_retention(conn, 90, 72)
        assert first.removed.removed == {"processed": 0, "ignored": 50}  # in batches
        assert first.inbox_days.partitions == []  # two processed events are younger
        conn.execute(
            "UPDATE webhook_events SET received_at = now() - interval '100 days' WHERE pk < %s",
            (inbox.LEGACY_END,),
        )
        second = operations.apply_retention(conn, 90, 72)
        assert second.removed.removed == {"processed": 2, "ignored": 0}
        assert (second.inbox_days.partitions, second.inbox_days.kept) == ([inbox.LEGACY], 1)
        assert conn.execute("SELECT to_regclass(%s)", (inbox.LEGACY,)).fetchone() == (None,)
        assert conn.execute(
            "SELECT pk, tableoid::regclass::text FROM webhook_events"
            " WHERE event_id = 'still-waiting'"
        ).fetchone() == (-999999, "webhook_events_kept")
