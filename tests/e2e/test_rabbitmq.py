"""The worker on RabbitMQ (amqp://), where a server is reachable (127.0.0.1:5672 here)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest
from kombu import Connection
from nacl.signing import SigningKey

from app.config import Settings
from app.web import create_app
from tests.conftest import CeleryWorker, example, fresh_ids, new_profile, post_webhook, wait_for

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


def _reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            return True
    except OSError:
        return False


pytestmark = [
    pytest.mark.skipif(not _reachable(), reason="no RabbitMQ server on 127.0.0.1:5672"),
]
QUEUE = f"optout-sync-amqp-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def worker_extra_env() -> Iterator[dict[str, str]]:
    yield {"CELERY_BROKER_URL": AMQP_URL, "CELERY_QUEUE": QUEUE}
    with Connection(AMQP_URL) as conn:  # leave the machine's RabbitMQ as we found it
        conn.default_channel.queue_delete(QUEUE)


@pytest.fixture
def amqp_settings(e2e_settings: Settings) -> Settings:
    return replace(e2e_settings, broker_url=AMQP_URL, celery_queue=QUEUE)


def test_a_stop_is_applied_through_rabbitmq(
    celery_worker: CeleryWorker, amqp_settings: Settings, signing_key: SigningKey
) -> None:
    client = create_app(amqp_settings, {"TESTING": True}).test_client()
    assert client.get("/readyz").get_json()["checks"] == {"database": "ok", "broker": "ok"}
    profile = new_profile()
    response = post_webhook(client, fresh_ids(example("stop_long_code"), profile), signing_key)
    assert response.get_json() == {"status": "accepted"}

    def opted_out() -> bool:
        with psycopg.connect(amqp_settings.database_url or "") as conn:
            row = conn.execute(
                "SELECT status FROM subscribers WHERE messaging_profile_id = %s", (profile,)
            ).fetchone()
        return row is not None and row[0] == "opted_out"

    # The worker's own PostgreSQL sweeper would also get there, in SWEEP_INTERVAL_SECONDS (2);
    # the broker path is what makes it immediate, and the log shows it was taken.
    wait_for(opted_out, timeout=30)
    wait_for(lambda: "optout_sync.apply_pending" in celery_worker.supervisor.log("worker"))
    assert "Connected to amqp://guest:**@127.0.0.1:5672//" in celery_worker.supervisor.log("worker")
