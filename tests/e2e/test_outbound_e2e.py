"""A texted STOP reaches the organisation's CRM as a signed webhook, through the real Celery
worker that applied it (spec §11)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from nacl.signing import SigningKey
from standardwebhooks.webhooks import Webhook

from app.cli import main
from app.config import Settings
from tests.conftest import CeleryWorker, example, fresh_ids, new_profile, post_webhook, wait_for
from tests.webhook_receiver import Receiver, webhook_receiver


@pytest.fixture(scope="module")
def worker_extra_env() -> dict[str, str]:
    return {"ENDPOINTS_ALLOW_PRIVATE": "true"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


def test_a_texted_stop_is_delivered_to_the_crm_by_the_worker_that_applied_it(
    celery_worker: CeleryWorker,
    e2e_client: FlaskClient,
    e2e_settings: Settings,
    signing_key: SigningKey,
    receiver: Receiver,
) -> None:
    profile = new_profile()
    env = {"DATABASE_URL": e2e_settings.database_url or "", "ENDPOINTS_ALLOW_PRIVATE": "true"}
    added = CliRunner().invoke(
        main, ["endpoints", "add", receiver.url, "--profile", profile], env=env
    )
    assert added.exit_code == 0, added.output
    secret = added.output.split()[3]

    payload = fresh_ids(example("stop_long_code"), profile)
    post_webhook(e2e_client, payload, signing_key)
    wait_for(lambda: receiver.delivered())
    (got,) = receiver.delivered()
    delivered = Webhook(secret).verify(got.body, got.headers)
    assert delivered["type"] == "consent.opted_out"
    assert delivered["data"]["event_id"] == payload["data"]["id"]
    assert delivered["data"]["messaging_profile_id"] == profile
