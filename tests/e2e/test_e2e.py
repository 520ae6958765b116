"""End to end with real processes: the Procfile's gunicorn web, Celery worker and beat."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from flask.testing import FlaskClient
from nacl.signing import SigningKey

from app import celery_config
from app.config import Settings
from app.devtools.devstack import free_port
from app.devtools.simulate import encode, sign
from app.devtools.supervisor import Supervisor, read_procfile
from app.web import create_app
from app.web.handoff import Enqueuer
from tests.conftest import (
    API_TOKEN,
    ROOT,
    CeleryWorker,
    example,
    fresh_ids,
    new_profile,
    post_webhook,
    service_env,
    wait_for,
)
from tests.e2e.support import http, subscriber_status, wait_until_serving
from tests.integration.test_retention import kept_event_ids, record_aged


def test_signed_stop_is_applied_by_a_real_celery_worker(
    celery_worker: CeleryWorker,
    e2e_client: FlaskClient,
    e2e_settings: Settings,
    signing_key: SigningKey,
) -> None:
    profile = new_profile()
    assert post_webhook(
        e2e_client, fresh_ids(example("stop_toll_free"), profile), signing_key
    ).get_json() == {"status": "accepted"}
    assert e2e_settings.database_url
    wait_for(lambda: subscriber_status(e2e_settings.database_url or "", profile) == "opted_out")


def test_worker_applies_a_burst_exactly_once(
    celery_worker: CeleryWorker,
    e2e_client: FlaskClient,
    e2e_settings: Settings,
    signing_key: SigningKey,
) -> None:
    profile = new_profile()
    payloads = [fresh_ids(example("stop_long_code"), profile) for _ in range(5)]
    for index, payload in enumerate(payloads * 3):  # every event delivered three times
        payload["data"]["payload"]["from"]["phone_number"] = f"+1312555{(index % 5):04d}"
        post_webhook(e2e_client, payload, signing_key)
    url = e2e_settings.database_url or ""

    def audited() -> int:
        with psycopg.connect(url) as conn:
            return conn.execute(
                "SELECT count(*) FROM audit_log WHERE messaging_profile_id = %s", (profile,)
            ).fetchone()[0]  # type: ignore[index]

    wait_for(lambda: audited() >= 5)
    with psycopg.connect(url) as conn:
        per_event = conn.execute(
            "SELECT event_id, count(*) FROM audit_log WHERE messaging_profile_id = %s"
            " GROUP BY event_id",
            (profile,),
        ).fetchall()
    assert sorted(count for _, count in per_event) == [1] * 5


@pytest.fixture(scope="module")
def beat(
    e2e_settings: Settings, signing_key: SigningKey, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    env = service_env(e2e_settings, signing_key)
    env["DATA_DIR"] = str(tmp_path_factory.mktemp("beat-data"))
    command = f"{sys.executable} -m celery --app workers.celery_app beat --loglevel INFO"
    with Supervisor({"beat": command}, env, log_dir=tmp_path_factory.mktemp("beat"), cwd=ROOT):
        yield


def test_event_accepted_while_broker_was_down_is_applied_by_the_sweeper(
    celery_worker: CeleryWorker, beat: None, e2e_settings: Settings, signing_key: SigningKey
) -> None:
    broker_down = replace(e2e_settings, broker_url=f"redis://127.0.0.1:{free_port()}/0")
    client = create_app(broker_down, {"TESTING": True}).test_client()
    profile = new_profile()
    response = post_webhook(
        client, fresh_ids(example("revoke_without_autoresponse"), profile), signing_key
    )
    assert response.get_json() == {"status": "accepted"}
    wait_for(lambda: subscriber_status(e2e_settings.database_url or "", profile) == "opted_out")


# --- gunicorn, exactly as the Procfile runs it ---------------------------------------------------


@pytest.fixture(scope="module")
def web(
    e2e_settings: Settings, signing_key: SigningKey, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = free_port()
    env = service_env(e2e_settings, signing_key) | {
        "PORT": str(port),
        "WEB_CONCURRENCY": "3",
        "HOST": "127.0.0.1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = read_procfile(ROOT / "Procfile")["web"]
    with Supervisor({"web": command}, env, log_dir=tmp_path_factory.mktemp("web"), cwd=ROOT):
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(base)
        yield base


def test_procfile_web_under_gunicorn_accepts_a_stop_that_the_api_then_shows(
    web: str, celery_worker: CeleryWorker, signing_key: SigningKey
) -> None:
    profile = new_profile()
    body = encode(fresh_ids(example("stop_long_code"), profile))
    status, answer = http("POST", web + "/webhooks/messaging", body, sign(body, signing_key))
    assert (status, answer) == (200, {"status": "accepted"})
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    path = f"{web}/v1/subscribers/%2B13125550147?messaging_profile_id={profile}"
    subscriber = wait_for(lambda: (r := http("GET", path, headers=auth))[0] == 200 and r[1])
    assert subscriber["status"] == "opted_out"


def test_a_locked_inbox_gets_a_503_inside_telnyxs_deadline_not_a_hang(
    web: str, e2e_settings: Settings, signing_key: SigningKey
) -> None:
    body = encode(fresh_ids(example("stop_long_code"), new_profile()))
    with psycopg.connect(e2e_settings.database_url or "") as locker:
        # What a release migration's ALTER TABLE holds, for up to its own 10 min limit.
        locker.execute("LOCK TABLE webhook_events IN ACCESS EXCLUSIVE MODE")
        # Telnyx waits 2 s: an answer later than that is a failure to it, like a hang.
        status, answer = http(
            "POST", web + "/webhooks/messaging", body, sign(body, signing_key), timeout=2.0
        )
        assert (status, answer) == (503, {"error": "database busy; retry later"})
    # The lock is gone: Telnyx's retry is accepted.
    status, answer = http("POST", web + "/webhooks/messaging", body, sign(body, signing_key))
    assert (status, answer) == (200, {"status": "accepted"})


def test_head_requests_on_the_export_leave_no_connection_behind(web: str) -> None:
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    # More than the 3 workers' pools hold (4 connections each): a leak would exhaust them.
    for _ in range(30):
        status, _ = http("HEAD", web + "/v1/exports/audit?format=csv", headers=auth)
        assert status == 200
    query = "messaging_profile_id=p&from=%2B17735550188&to=%2B13125550147"
    answers = [http("GET", f"{web}/v1/can-send?{query}", headers=auth)[0] for _ in range(12)]
    assert answers == [200] * 12
    assert http("GET", web + "/readyz")[0] == 200


def test_metrics_add_up_across_gunicorn_workers(web: str, signing_key: SigningKey) -> None:
    stranger = SigningKey.generate()
    for _ in range(12):  # spread over the 3 workers by the kernel
        body = encode(fresh_ids(example("help")))
        assert http("POST", web + "/webhooks/messaging", body, sign(body, stranger))[0] == 401
    text = http("GET", web + "/metrics")[1]
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith('optout_sync_webhooks_total{outcome="unauthorized"}')
    )
    assert float(line.split()[-1]) >= 12


def test_procfile_web_refuses_to_start_without_public_key_and_tokens(tmp_path: Path) -> None:
    env = {
        "PATH": str(Path(sys.executable).parent),
        "DATABASE_URL": "postgresql://x/y",
        "PORT": str(free_port()),
    }
    command = read_procfile(ROOT / "Procfile")["web"]
    result = subprocess.run(
        ["/bin/sh", "-c", command], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "optout-sync: refusing to start: TELNYX_PUBLIC_KEY and API_TOKENS not set "
        "(run `optout-sync dev` for a local setup that makes its own)"
    ]


def test_beat_task_prunes_through_a_real_worker(
    celery_worker: CeleryWorker, e2e_settings: Settings
) -> None:
    url = e2e_settings.database_url or ""
    with psycopg.connect(url) as conn:
        old = {record_aged(conn, "processed", 120) for _ in range(3)}
        recent = record_aged(conn, "processed", 2)
    assert Enqueuer(e2e_settings).client.send_task(celery_config.PRUNE_TASK)
    wait_for(lambda: not (old & kept_event_ids(url)))
    assert recent in kept_event_ids(url)
