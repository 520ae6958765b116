"""Group commit (issue 18): concurrent webhooks to one web process share one INSERT and one
commit, and none is answered before the commit that holds it."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import psycopg
import pytest
from nacl.signing import SigningKey
from psycopg_pool import ConnectionPool
from werkzeug.serving import make_server

from app.config import Settings
from app.devtools.simulate import encode, message_received, sign
from app.services.receive import record_deliveries
from app.store import inbox
from app.web import create_app

WEBHOOKS = 24


@pytest.fixture
def served(make_database: Callable[[], str], settings: Settings) -> Iterator[tuple[str, str]]:
    """A fresh database, and the app on it behind a threaded HTTP server: (url, database)."""
    url = make_database()
    app = create_app(replace(settings, database_url=url))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/webhooks/messaging", url
    server.shutdown()


def test_concurrent_webhooks_share_a_commit_and_each_is_durable_before_its_answer(
    served: tuple[str, str], signing_key: SigningKey
) -> None:
    endpoint, url = served
    bodies = [
        encode(
            message_received(text="STOP", from_number=f"+1312555{i:04d}", to_number="+17735550188")
        )
        for i in range(WEBHOOKS)
    ]

    def post(body: bytes) -> tuple[int, bool, float]:
        """Send one webhook; on its answer, whether its row is already committed."""
        request = urllib.request.Request(endpoint, data=body, headers=sign(body, signing_key))
        with urllib.request.urlopen(request, timeout=10) as answer:
            status = answer.status
        answered_at = time.monotonic()
        with psycopg.connect(url) as conn:  # another session sees only committed rows
            kept = conn.execute(
                "SELECT 1 FROM webhook_events WHERE raw_body = %b", (body,)
            ).fetchone()
        return status, kept is not None, answered_at

    with psycopg.connect(url) as blocker, ThreadPoolExecutor(WEBHOOKS) as senders:
        # Hold inserts back for a moment, as a slow flush would: the webhooks pile up
        # behind the first commit, then go in together.
        blocker.execute("LOCK TABLE webhook_events IN SHARE MODE")
        sent = [senders.submit(post, body) for body in bodies]
        time.sleep(0.3)
        released_at = time.monotonic()
        blocker.commit()
        answers = [future.result() for future in sent]

    assert [status for status, _, _ in answers] == [200] * WEBHOOKS
    assert all(kept for _, kept, _ in answers)  # each was committed before it was answered
    assert all(at > released_at for _, _, at in answers)  # none answered while held back
    with psycopg.connect(url) as conn:
        transactions = conn.execute(
            "SELECT xmin::text, count(*) FROM webhook_events GROUP BY 1"
        ).fetchall()
        ids = [row[0] for row in conn.execute("SELECT event_id FROM webhook_events")]
    assert len(ids) == WEBHOOKS
    # Rows committed together share their transaction id: far fewer commits than webhooks.
    assert len(transactions) <= 3, transactions


def test_a_repeated_event_in_one_batch_is_kept_once_and_answered_duplicate_once(
    served: tuple[str, str], signing_key: SigningKey
) -> None:
    endpoint, url = served
    body = encode(
        message_received(text="STOP", from_number="+13125550111", to_number="+17735550188")
    )

    def post() -> str:
        request = urllib.request.Request(endpoint, data=body, headers=sign(body, signing_key))
        with urllib.request.urlopen(request, timeout=10) as answer:
            return str(answer.read())

    with psycopg.connect(url) as blocker, ThreadPoolExecutor(4) as senders:
        blocker.execute("LOCK TABLE webhook_events IN SHARE MODE")
        sent = [senders.submit(post) for _ in range(4)]  # Telnyx retrying a slow answer
        time.sleep(0.3)
        blocker.commit()
        answers = sorted("accepted" in a for a in (future.result() for future in sent))
    assert answers == [False, False, False, True]  # one accepted, three duplicates
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM webhook_events").fetchone() == (1,)


def test_a_delivery_the_database_refuses_fails_alone_and_its_batch_is_kept(
    make_database: Callable[[], str],
) -> None:
    url = make_database()

    def delivery(event_id: str) -> inbox.Delivery:
        return inbox.Delivery(event_id, "message.received", inbox.PENDING, b"{}", 1)

    batch = [delivery("evt-a"), delivery("evt-\x00"), delivery("evt-b"), delivery("evt-a")]
    with ConnectionPool(url, min_size=1, max_size=1, kwargs={"autocommit": True}) as pool:
        outcomes = record_deliveries(pool, batch, pool_wait=1.0)
    assert outcomes[0] is True and outcomes[2] is True and outcomes[3] is False
    assert isinstance(outcomes[1], psycopg.DataError) and "0x00" in str(outcomes[1])
    with psycopg.connect(url) as conn:
        kept = conn.execute("SELECT event_id FROM webhook_events ORDER BY event_id").fetchall()
    assert kept == [("evt-a",), ("evt-b",)]
