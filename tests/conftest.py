"""Fixtures: a real PostgreSQL and Redis (embedded by default, DATABASE_URL/REDIS_URL when set),
a fresh database per session, the Flask app, and a real Celery worker for end-to-end tests."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from nacl.signing import SigningKey
from psycopg_pool import ConnectionPool

from app.config import Settings
from app.devtools.simulate import encode, message_received, sign
from app.devtools.supervisor import Supervisor
from app.services import apply_events, operations
from app.store import inbox, migrations
from app.store.db import close_pools
from app.web import create_app

ROOT = Path(__file__).resolve().parent.parent
# Payloads from Telnyx's documentation, kept in the repository (tests read nothing outside it).
EXAMPLES = ROOT / "tests" / "fixtures" / "telnyx"
TEST_DATA_DIR = ROOT / ".data" / "test-services"
API_TOKEN = "test-token-" + secrets.token_hex(8)
PROFILE = "40017f0f-92d8-4318-9f8a-e0e2a92c3f60"


# Each folder of tests is a kind, and its marker: `pytest -m unit` runs what needs no server.
KINDS = ("unit", "integration", "e2e", "faults")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        kind = item.path.relative_to(ROOT / "tests").parts[0]
        if kind in KINDS:
            item.add_marker(kind)


@pytest.fixture(scope="session")
def servers() -> Iterator[dict[str, str]]:
    """URLs of a PostgreSQL server and a Redis server for the whole test session."""
    started: list[Any] = []
    database_url = os.environ.get("DATABASE_URL", "").strip()
    redis_url = os.environ.get("REDIS_URL", "").strip()
    if not database_url:
        from app.devtools.devstack import EmbeddedPostgres

        # Durability settings off: tests never crash the machine, and it is 5x faster.
        postgres = EmbeddedPostgres(TEST_DATA_DIR, ("-c fsync=off", "-c full_page_writes=off"))
        database_url = postgres.start()
        started.append(postgres)
    if not redis_url:
        from app.devtools.devstack import EmbeddedRedis

        broker = EmbeddedRedis(TEST_DATA_DIR)
        redis_url = broker.start()
        started.append(broker)
    yield {"database": database_url, "redis": redis_url}
    close_pools()
    for service in reversed(started):
        service.stop()


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def make_database(servers: dict[str, str]) -> Iterator[Callable[[], str]]:
    """Create fresh, migrated databases on the test server; drop them afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"optout_sync_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(servers["database"], autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        url = _with_database(servers["database"], name)
        with psycopg.connect(url, autocommit=True) as conn:
            migrations.upgrade(conn)
            operations.ensure_partitions(conn)
        return url

    yield make
    close_pools()
    with psycopg.connect(servers["database"], autocommit=True) as admin:
        for name in made:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(make_database: Callable[[], str]) -> str:
    return make_database()


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate()


def settings_for(
    database_url: str, redis_url: str, key: SigningKey, queue: str, **env: str
) -> Settings:
    return Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "TELNYX_PUBLIC_KEY": base64.b64encode(bytes(key.verify_key)).decode(),
            "API_TOKENS": f"other-token,{API_TOKEN}",
            "CELERY_QUEUE": queue,
            "DATA_DIR": str(TEST_DATA_DIR),
            "MAX_ATTEMPTS": "3",
            **env,
        }
    )


@pytest.fixture(scope="session")
def queue(servers: dict[str, str]) -> Iterator[str]:
    name = f"optout-sync-test-{uuid.uuid4().hex[:8]}"
    yield name
    redis.Redis.from_url(servers["redis"]).delete(name)


@pytest.fixture(scope="session")
def settings(
    database_url: str, servers: dict[str, str], signing_key: SigningKey, queue: str
) -> Settings:
    return settings_for(database_url, servers["redis"], signing_key, queue)


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings, {"TESTING": True})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    """A connection whose work is rolled back after the test."""
    with psycopg.connect(database_url) as connection:
        yield connection
        connection.rollback()


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def fresh_ids(payload: dict[str, Any], profile: str | None = None) -> dict[str, Any]:
    """A copy of an example with a new event id (and optionally profile), so tests don't clash."""
    copy = json.loads(json.dumps(payload))
    copy["data"]["id"] = str(uuid.uuid4())
    if profile:
        copy["data"]["payload"]["messaging_profile_id"] = profile
    return copy


def post_webhook(
    client: FlaskClient,
    payload: dict[str, Any] | bytes,
    key: SigningKey,
    timestamp: int | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    body = payload if isinstance(payload, bytes) else encode(payload)
    sent = sign(body, key, timestamp)
    sent.update(headers or {})
    return client.post("/webhooks/messaging", data=body, headers=sent)


def record_pending(
    conn: psycopg.Connection, payload: dict[str, Any], event_id: str | None = None
) -> None:
    """A message.received kept in the inbox as the receiver keeps it: pending."""
    inbox.record_event(
        conn,
        event_id=event_id or payload["data"]["id"],
        event_type="message.received",
        status="pending",
        raw_body=encode(payload),
        signed_at=None,
    )


def apply_received(url: str, payloads: list[dict[str, Any]]) -> None:
    """Payloads received, then applied in-process by the worker's own code, committed."""
    with psycopg.connect(url) as conn:
        for payload in payloads:
            record_pending(conn, payload)
        apply_events.apply_claimed(conn, inbox.claim_pending(conn, len(payloads)), max_attempts=3)
        conn.commit()


def failed_event(url: str, number: str) -> str:
    """A STOP from ``number`` the worker gave up on (its id): every attempt hit a fault only
    it hits, from the database itself, as a broken row would cause; the fault is then fixed,
    so a replay succeeds."""
    payload = message_received(text="STOP", from_number=number, to_number="+13125550100")
    with psycopg.connect(url) as conn:
        record_pending(conn, payload)
        conn.execute(
            f"ALTER TABLE subscribers ADD CONSTRAINT no_poison CHECK (phone_number <> '{number}')"
        )
        conn.commit()
    try:
        drain_every_attempt(url)
    finally:
        with psycopg.connect(url) as conn:  # the fix
            conn.execute("ALTER TABLE subscribers DROP CONSTRAINT no_poison")
            conn.commit()
    return str(payload["data"]["id"])


def drain_every_attempt(url: str, max_attempts: int = 3) -> None:
    """Apply the pending events as the worker would, max_attempts times, each backoff made
    due at once: an event that keeps failing ends failed."""
    with ConnectionPool(url, min_size=1, max_size=1, open=True) as pool:
        for _ in range(max_attempts):
            apply_events.drain(pool, batch_size=100, max_attempts=max_attempts)
            with pool.connection() as conn:
                conn.execute(
                    "UPDATE webhook_events SET next_attempt_at = now() WHERE status = 'pending'"
                )


def new_profile() -> str:
    return f"profile-{uuid.uuid4()}"


def wait_for(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll until check() is truthy; the deadline bounds a wait, it asserts no speed."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: last value {value!r}")
        time.sleep(interval)


class CeleryWorker:
    """A real `celery worker` (the Procfile's command, prefork pool), run by the one process
    runner that dev and bench use."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        command = (
            f"{sys.executable} -m celery --app workers.celery_app worker --loglevel INFO"
            " --concurrency 2 --pool prefork --without-gossip --without-mingle"
            f" --hostname test-{uuid.uuid4().hex[:6]}@%h"
        )
        self.supervisor = Supervisor({"worker": command}, env, log_dir=log_dir, cwd=ROOT)

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.supervisor.process("worker")

    def start(self) -> None:
        self.supervisor.__enter__()
        wait_for(lambda: "ready." in self.supervisor.log("worker"), timeout=60)

    def stop(self) -> None:
        self.supervisor.stop(grace_seconds=20)


def service_env(settings: Settings, signing_key: SigningKey) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": settings.database_url or "",
            "REDIS_URL": settings.broker_url or "",
            "TELNYX_PUBLIC_KEY": base64.b64encode(bytes(signing_key.verify_key)).decode(),
            "API_TOKENS": API_TOKEN,
            "CELERY_QUEUE": settings.celery_queue,
            "DATA_DIR": str(TEST_DATA_DIR),
            "MAX_ATTEMPTS": str(settings.max_attempts),
            "SWEEP_INTERVAL_SECONDS": "2",
            "PYTHONUNBUFFERED": "1",
            # The Procfile names gunicorn and celery: the venv running the tests provides them.
            "PATH": os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))),
        }
    )
    env.pop("CELERY_BROKER_URL", None)
    return env


@pytest.fixture(scope="module")
def e2e_settings(
    make_database: Callable[[], str], servers: dict[str, str], signing_key: SigningKey
) -> Iterator[Settings]:
    """Its own database and queue: a running worker must not race the in-process tests."""
    queue_name = f"optout-sync-e2e-{uuid.uuid4().hex[:8]}"
    yield settings_for(make_database(), servers["redis"], signing_key, queue_name)
    redis.Redis.from_url(servers["redis"]).delete(queue_name)


@pytest.fixture(scope="module")
def worker_extra_env() -> dict[str, str]:
    """Extra environment for the module's worker; a test module overrides it."""
    return {}


@pytest.fixture(scope="module")
def celery_worker(
    e2e_settings: Settings,
    signing_key: SigningKey,
    tmp_path_factory: pytest.TempPathFactory,
    worker_extra_env: dict[str, str],
) -> Iterator[CeleryWorker]:
    env = service_env(e2e_settings, signing_key) | worker_extra_env
    worker = CeleryWorker(env, tmp_path_factory.mktemp("worker"))
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def e2e_client(e2e_settings: Settings) -> FlaskClient:
    return create_app(e2e_settings, {"TESTING": True}).test_client()


def with_profile(settings: Settings, **changes: Any) -> Settings:
    return replace(settings, **changes)
