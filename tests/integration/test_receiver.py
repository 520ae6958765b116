"""POST /webhooks/messaging against a real PostgreSQL and Redis (spec §3)."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from flask.testing import FlaskClient
from nacl.signing import SigningKey
from prometheus_client import REGISTRY

from app.config import Settings
from app.devtools.devstack import EmbeddedRedis, free_port
from app.devtools.simulate import encode, sign
from app.services import apply_events
from app.store import inbox
from app.web import create_app
from app.web.handoff import Enqueuer
from tests.conftest import example, fresh_ids, post_webhook, wait_for


def inbox_row(database_url: str, event_id: str) -> dict[str, Any] | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT status, raw_body, event_type, last_error, signed_at FROM webhook_events"
            " WHERE event_id = %s",
            (event_id,),
        ).fetchone()
    if row is None:
        return None
    return dict(
        zip(("status", "raw_body", "event_type", "last_error", "signed_at"), row, strict=True)
    )


def count_inbox(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM webhook_events").fetchone()[0]  # type: ignore[index]


def test_signed_stop_is_accepted_and_kept_byte_for_byte(
    client: FlaskClient, signing_key: SigningKey, database_url: str
) -> None:
    payload = fresh_ids(example("stop_long_code"))
    # Odd spacing on purpose: the stored body must be the bytes that were signed.
    body = json.dumps(payload, indent=3).encode()
    response = post_webhook(client, body, signing_key)
    assert response.status_code == 200
    assert response.get_json() == {"status": "accepted"}
    row = inbox_row(database_url, payload["data"]["id"])
    assert row is not None
    assert row["status"] == "pending"
    assert bytes(row["raw_body"]) == body
    assert row["event_type"] == "message.received"


def test_duplicate_delivery_answers_duplicate_and_keeps_one_row(
    client: FlaskClient, signing_key: SigningKey, database_url: str
) -> None:
    payload = fresh_ids(example("help"))
    assert post_webhook(client, payload, signing_key).get_json() == {"status": "accepted"}
    before = count_inbox(database_url)
    again = post_webhook(client, payload, signing_key)
    assert again.status_code == 200
    assert again.get_json() == {"status": "duplicate"}
    assert count_inbox(database_url) == before


def test_other_event_types_are_kept_and_ignored(
    client: FlaskClient, signing_key: SigningKey, database_url: str
) -> None:
    payload = fresh_ids(example("message_finalized"))
    payload["data"]["event_type"] = "call.hangup"  # a voice event to a shared URL, say
    response = post_webhook(client, payload, signing_key)
    assert (response.status_code, response.get_json()) == (200, {"status": "ignored"})
    row = inbox_row(database_url, payload["data"]["id"])
    assert row is not None and row["status"] == "ignored" and row["event_type"] == "call.hangup"


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda h: {k: v for k, v in h.items() if "signature" not in k}, id="unsigned"),
        pytest.param(lambda h: h | {"telnyx-timestamp": "1000000000"}, id="stale-timestamp"),
        pytest.param(lambda h: h | {"telnyx-signature-ed25519": "@@@"}, id="signature-not-base64"),
        pytest.param(lambda h: {k: v for k, v in h.items() if "timestamp" not in k}, id="no-time"),
    ],
)
def test_unverifiable_request_is_401_json_and_writes_nothing(
    client: FlaskClient, signing_key: SigningKey, database_url: str, tamper: Any
) -> None:
    payload = fresh_ids(example("stop_long_code"))
    body = encode(payload)
    response = client.post(
        "/webhooks/messaging", data=body, headers=tamper(sign(body, signing_key))
    )
    assert response.status_code == 401
    assert response.is_json and response.get_json()["error"]
    assert inbox_row(database_url, payload["data"]["id"]) is None


def test_request_signed_by_another_key_is_401(client: FlaskClient, database_url: str) -> None:
    payload = fresh_ids(example("stop_long_code"))
    response = post_webhook(client, payload, SigningKey.generate())
    assert response.status_code == 401
    assert "does not match" in response.get_json()["error"]
    assert inbox_row(database_url, payload["data"]["id"]) is None


def test_body_over_one_mebibyte_is_413_json(client: FlaskClient, signing_key: SigningKey) -> None:
    body = b'{"data": "' + b"x" * (1024 * 1024) + b'"}'
    response = client.post("/webhooks/messaging", data=body, headers=sign(body, signing_key))
    assert response.status_code == 413
    assert "larger than" in response.get_json()["error"]


def test_verified_body_that_is_not_json_is_kept_invalid_and_400(
    client: FlaskClient, signing_key: SigningKey, database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:
        before = conn.execute(
            "SELECT count(*) FROM webhook_events WHERE status = 'invalid' AND event_id IS NULL"
        ).fetchone()[0]  # type: ignore[index]
    response = post_webhook(client, b"this is not json", signing_key)
    assert response.status_code == 400
    assert "not JSON" in response.get_json()["error"]
    with psycopg.connect(database_url) as conn:
        after = conn.execute(
            "SELECT count(*) FROM webhook_events WHERE status = 'invalid' AND event_id IS NULL"
        ).fetchone()[0]  # type: ignore[index]
    assert after == before + 1


@pytest.mark.parametrize(
    ("break_payload", "problem"),
    [
        (
            lambda p: p["data"]["payload"]["from"].pop("phone_number"),
            "from.phone_number is missing",
        ),
        (lambda p: p["data"]["payload"].update(to=[]), "data.payload.to is empty"),
        (lambda p: p["data"].update(occurred_at="yesterday"), "not an ISO 8601 time"),
        (lambda p: p["data"]["payload"].pop("messaging_profile_id"), "messaging_profile_id"),
        (lambda p: p["data"]["payload"]["from"].update(phone_number="+1"), "phone_number"),
    ],
)
def test_verified_but_malformed_event_is_kept_invalid_and_400_naming_the_field(
    client: FlaskClient,
    signing_key: SigningKey,
    database_url: str,
    break_payload: Any,
    problem: str,
) -> None:
    payload = fresh_ids(example("stop_long_code"))
    break_payload(payload)
    response = post_webhook(client, payload, signing_key)
    assert response.status_code == 400
    assert problem in response.get_json()["error"]
    row = inbox_row(database_url, payload["data"]["id"])
    assert row is not None and row["status"] == "invalid"
    assert problem in row["last_error"]


@pytest.mark.parametrize("field", ["id", "event_type"])
def test_nul_in_a_signed_envelope_field_is_kept_invalid_and_400_naming_it(
    client: FlaskClient, signing_key: SigningKey, database_url: str, field: str
) -> None:
    payload = fresh_ids(example("stop_long_code"))
    payload["data"][field] += "\x00"
    body = encode(payload)
    response = post_webhook(client, body, signing_key)
    assert response.status_code == 400
    assert response.get_json() == {"error": f"data.{field} contains a NUL character"}
    with psycopg.connect(database_url) as conn:
        kept = conn.execute(
            "SELECT status, event_id, last_error FROM webhook_events WHERE raw_body = %s",
            (body,),
        ).fetchall()
    assert kept == [("invalid", None, f"data.{field} contains a NUL character")]


def test_database_down_answers_503_so_telnyx_retries(
    settings: Settings, signing_key: SigningKey
) -> None:
    down = replace(settings, database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    client = create_app(down, {"TESTING": True}).test_client()
    response = post_webhook(client, fresh_ids(example("stop_long_code")), signing_key)
    assert response.status_code == 503
    assert "database unavailable" in response.get_json()["error"]


def test_broker_down_still_answers_200_and_the_sweepers_drain_applies_the_event(
    settings: Settings, signing_key: SigningKey, database_url: str
) -> None:
    down = replace(settings, broker_url=f"redis://127.0.0.1:{free_port()}/0")
    client = create_app(down, {"TESTING": True}).test_client()
    profile = f"broker-down-{uuid.uuid4()}"
    payload = fresh_ids(example("stop_long_code"), profile)
    failures_before = enqueue_failures()
    response = post_webhook(client, payload, signing_key)
    assert (response.status_code, response.get_json()) == (200, {"status": "accepted"})
    wait_for(lambda: enqueue_failures() > failures_before)  # the hand-off was tried, and failed
    # The event is durable all the same: what a sweeper does applies it, without the broker.
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT pk, status FROM webhook_events WHERE event_id = %s", (payload["data"]["id"],)
        ).fetchone()
        assert row is not None and row[1] == "pending"
        apply_events.apply_claimed(conn, inbox.claim_events(conn, [row[0]]), max_attempts=3)
        conn.commit()
    with psycopg.connect(database_url) as conn:
        status = conn.execute(
            "SELECT status FROM subscribers WHERE messaging_profile_id = %s", (profile,)
        ).fetchone()
    assert status == ("opted_out",)


def enqueue_failures() -> float:
    return REGISTRY.get_sample_value("optout_sync_enqueue_failures_total") or 0.0


def test_a_hand_off_that_failed_is_sent_once_the_broker_is_back(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    queue = f"optout-sync-handoff-{uuid.uuid4().hex[:8]}"
    enqueuer = Enqueuer(
        replace(settings, broker_url=f"redis://127.0.0.1:{port}/0", celery_queue=queue)
    )
    failures_before = enqueue_failures()
    enqueuer.request_apply()  # the broker is down: this send fails
    wait_for(lambda: enqueue_failures() > failures_before)
    broker = EmbeddedRedis(tmp_path)
    broker.start(port)
    try:
        # No request asks again: the failed hand-off itself is retried after its backoff.
        wait_for(lambda: redis.Redis(port=port).llen(queue) >= 1, timeout=30)
    finally:
        broker.stop()


def test_healthz_answers_while_process_is_alive(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_reports_database_and_broker(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_is_503_naming_the_dependency_that_is_down(settings: Settings) -> None:
    down = replace(settings, broker_url=f"redis://127.0.0.1:{free_port()}/0")
    response = create_app(down, {"TESTING": True}).test_client().get("/readyz")
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["database"] == "ok"
    assert checks["broker"].startswith("unavailable")


def test_metrics_count_webhooks_by_outcome(client: FlaskClient, signing_key: SigningKey) -> None:
    def unauthorized() -> float:
        return (
            REGISTRY.get_sample_value("optout_sync_webhooks_total", {"outcome": "unauthorized"})
            or 0.0
        )

    before = unauthorized()
    for _ in range(3):
        post_webhook(client, fresh_ids(example("stop_long_code")), SigningKey.generate())
    assert unauthorized() == before + 3
    text = client.get("/metrics").get_data(as_text=True)
    assert f'optout_sync_webhooks_total{{outcome="unauthorized"}} {before + 3}' in text


def test_unknown_paths_answer_json(client: FlaskClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404 and response.is_json


def test_a_connection_the_database_dropped_costs_a_retry_not_a_503(
    client: FlaskClient, signing_key: SigningKey, database_url: str
) -> None:
    from app.store.db import RECEIVER, application_name

    first = fresh_ids(example("stop_long_code"))
    assert post_webhook(client, first, signing_key).status_code == 200
    # A restart of PostgreSQL, as the receiver's idle pooled connections see it.
    with psycopg.connect(database_url, autocommit=True) as admin:
        ended = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s",
            (application_name(RECEIVER),),
        ).fetchone()
    assert ended is not None and ended[0] >= 1
    second = fresh_ids(example("stop_long_code"))
    response = post_webhook(client, second, signing_key)
    assert (response.status_code, response.get_json()) == (200, {"status": "accepted"})
    row = inbox_row(database_url, second["data"]["id"])
    assert row is not None and row["status"] == "pending"
