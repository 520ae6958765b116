"""The keyword engine through the real webhook path and a real Celery worker."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from nacl.signing import SigningKey

from app.cli import main
from app.config import Settings
from app.devtools.simulate import message_received
from tests.conftest import API_TOKEN, CeleryWorker, new_profile, post_webhook, wait_for
from tests.keyword_configs import KEYWORDS

MEXICAN, AMERICAN, OUR_NUMBER = "+525512345678", "+13125550147", "+17735550188"


@pytest.fixture(scope="module")
def worker_extra_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    path = tmp_path_factory.mktemp("keywords") / "keywords.json"
    path.write_text(json.dumps(KEYWORDS, ensure_ascii=False))
    return {"KEYWORDS_FILE": str(path), "POSSIBLE_OPT_OUT_POLICY": "review"}


def send(
    client: FlaskClient, key: SigningKey, text: str, number: str, profile: str, at: datetime
) -> None:
    payload = message_received(
        text=text, from_number=number, to_number=OUR_NUMBER, profile_id=profile, occurred_at=at
    )
    assert post_webhook(client, payload, key).get_json() == {"status": "accepted"}


def subscriber(client: FlaskClient, number: str, profile: str) -> dict[str, object] | None:
    response = client.get(
        f"/v1/subscribers/{number.replace('+', '%2B')}",
        query_string={"messaging_profile_id": profile},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    )
    return response.get_json() if response.status_code == 200 else None


def status_becomes(client: FlaskClient, number: str, profile: str, status: str) -> None:
    wait_for(lambda: (s := subscriber(client, number, profile)) and s["status"] == status)


def test_spanish_keywords_from_a_mexican_number_opt_out_and_back_in(
    celery_worker: CeleryWorker, e2e_client: FlaskClient, signing_key: SigningKey
) -> None:
    profile, now = new_profile(), datetime.now(UTC)
    send(e2e_client, signing_key, "parar", MEXICAN, profile, now)
    status_becomes(e2e_client, MEXICAN, profile, "opted_out")
    send(e2e_client, signing_key, "inicio", MEXICAN, profile, now + timedelta(seconds=1))
    status_becomes(e2e_client, MEXICAN, profile, "opted_in")


@pytest.mark.parametrize("text", ["REVOKE", "ЅТОР", "SТОР", "𝐒𝐓𝐎𝐏", "opt-out"])
def test_revocations_telnyx_does_not_flag_opt_out(
    celery_worker: CeleryWorker, e2e_client: FlaskClient, signing_key: SigningKey, text: str
) -> None:
    profile = new_profile()
    send(e2e_client, signing_key, text, AMERICAN, profile, datetime.now(UTC))
    status_becomes(e2e_client, AMERICAN, profile, "opted_out")


def test_please_stop_texting_me_is_held_and_an_operator_decision_is_audited(
    celery_worker: CeleryWorker,
    e2e_client: FlaskClient,
    e2e_settings: Settings,
    signing_key: SigningKey,
) -> None:
    profile = new_profile()
    send(e2e_client, signing_key, "please stop texting me", AMERICAN, profile, datetime.now(UTC))
    status_becomes(e2e_client, AMERICAN, profile, "review")
    can = e2e_client.get(
        "/v1/can-send",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        query_string={"messaging_profile_id": profile, "from": OUR_NUMBER, "to": AMERICAN},
    )
    assert can.get_json()["reasons"] == ["pending_review"]

    runner, env = CliRunner(), {"DATABASE_URL": e2e_settings.database_url or ""}
    listed = runner.invoke(main, ["review", "list", "--profile", profile], env=env)
    assert AMERICAN in listed.output and '"please stop texting me"' in listed.output
    confirmed = runner.invoke(main, ["review", "confirm", AMERICAN, "--profile", profile], env=env)
    assert confirmed.exit_code == 0, confirmed.output
    assert "review_confirmed (review -> opted_out)" in confirmed.output
    status_becomes(e2e_client, AMERICAN, profile, "opted_out")
    with psycopg.connect(e2e_settings.database_url or "") as conn:
        actions = conn.execute(
            "SELECT action, source FROM audit_log WHERE messaging_profile_id = %s ORDER BY seq",
            (profile,),
        ).fetchall()
    assert actions == [("possible_opt_out", "intent"), ("review_confirmed", "operator")]
    again = runner.invoke(main, ["review", "dismiss", AMERICAN, "--profile", profile], env=env)
    assert again.exit_code == 1 and "not held for review (it is opted_out)" in again.output
