"""US short codes, and `to` as a single string: a STOP to either is an opt-out, never a 400."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient
from nacl.signing import SigningKey

from app.services import apply_events
from app.store import inbox
from app.web import create_app
from tests.conftest import API_TOKEN, example, fresh_ids, new_profile, post_webhook, settings_for

SUBSCRIBER = "+13125550147"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture(scope="module")
def own_database(make_database: Callable[[], str]) -> str:
    return make_database()  # applying claims every pending row: keep other tests' rows apart


@pytest.fixture
def short_code_client(
    own_database: str, servers: dict[str, str], signing_key: SigningKey, queue: str
) -> FlaskClient:
    settings = settings_for(own_database, servers["redis"], signing_key, queue)
    return create_app(settings, {"TESTING": True}).test_client()


def stop_to(recipients: Any, profile: str) -> dict[str, Any]:
    payload = fresh_ids(example("stop_long_code"), profile)
    payload["data"]["payload"]["to"] = recipients
    return payload


def apply_pending(url: str) -> None:
    with psycopg.connect(url) as conn:
        apply_events.apply_claimed(conn, inbox.claim_pending(conn, 100), max_attempts=3)
        conn.commit()


@pytest.mark.parametrize(
    ("recipients", "our_number"),
    [
        ([{"phone_number": "12345", "carrier": "", "line_type": "short_code"}], "12345"),
        ([{"phone_number": "876543"}], "876543"),
        ("12345", "12345"),  # an older payload shape: `to` as one string
        ("+17735550188", "+17735550188"),
    ],
)
def test_stop_to_a_short_code_or_a_single_to_string_opts_out(
    short_code_client: FlaskClient,
    signing_key: SigningKey,
    own_database: str,
    recipients: Any,
    our_number: str,
) -> None:
    profile = new_profile()
    answer = post_webhook(short_code_client, stop_to(recipients, profile), signing_key)
    assert (answer.status_code, answer.get_json()) == (200, {"status": "accepted"})
    apply_pending(own_database)

    can_send = short_code_client.get(
        "/v1/can-send",
        headers=AUTH,
        query_string={"messaging_profile_id": profile, "from": our_number, "to": SUBSCRIBER},
    ).get_json()
    assert (can_send["allowed"], can_send["reasons"]) == (False, ["opted_out"])
    assert [b["messaging_profile_id"] for b in can_send["blocked_by"]] == [profile]
    export = short_code_client.get(
        "/v1/exports/audit", headers=AUTH, query_string={"messaging_profile_id": profile}
    ).get_data(as_text=True)
    (row,) = csv.DictReader(io.StringIO(export))
    assert (row["phone_number"], row["our_number"], row["action"]) == (
        SUBSCRIBER,
        our_number,
        "opt_out",
    )


@pytest.mark.parametrize(
    ("recipients", "problem"),
    [
        (None, "data.payload.to is missing"),
        ([], "data.payload.to is empty"),
        ("1234", "data.payload.to: '1234' is not in E.164 form"),
        ([{"phone_number": "+1"}], "data.payload.to[0].phone_number: '+1'"),
    ],
)
def test_a_to_that_is_no_number_is_400_naming_what_is_wrong(
    short_code_client: FlaskClient, signing_key: SigningKey, recipients: Any, problem: str
) -> None:
    answer = post_webhook(short_code_client, stop_to(recipients, new_profile()), signing_key)
    assert answer.status_code == 400
    assert answer.get_json()["error"].startswith(problem)


def test_can_send_takes_a_short_code_as_from_and_still_refuses_a_subscriber_without_plus(
    short_code_client: FlaskClient,
) -> None:
    query = {"messaging_profile_id": new_profile(), "from": "12345", "to": SUBSCRIBER}
    assert short_code_client.get("/v1/can-send", headers=AUTH, query_string=query).get_json() == {
        "to": SUBSCRIBER,
        "allowed": True,
        "reasons": [],
        "blocked_by": [],
    }
    query["to"] = "12345"  # subscribers are always E.164
    refused = short_code_client.get("/v1/can-send", headers=AUTH, query_string=query)
    assert refused.status_code == 400
    assert "to: '12345' is not in E.164 form" in refused.get_json()["error"]
