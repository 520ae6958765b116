"""The read API: subscribers, history and can-send, behind bearer tokens (spec §7)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.config import Settings, parse_api_tokens
from app.devtools.simulate import message_received
from app.web import create_app
from tests.conftest import API_TOKEN, apply_received, example, fresh_ids

PROFILE = "api-profile"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture(scope="module")
def api_client(make_database: Callable[[], str], settings: Settings) -> FlaskClient:
    """A database holding: +13125550147 opted out (STOP to toll-free: also carrier-blocked),
    +13125550148 opted in, +13125550149 who only asked for HELP."""
    url = make_database()
    payloads = [
        fresh_ids(example("stop_toll_free"), PROFILE),
        message_received(
            text="START",
            from_number="+13125550148",
            to_number="+17735550188",
            profile_id=PROFILE,
            autoresponse_type="START",
        ),
        message_received(
            text="HELP",
            from_number="+13125550149",
            to_number="+17735550188",
            profile_id=PROFILE,
            autoresponse_type="HELP",
        ),
    ]
    apply_received(url, payloads)
    return create_app(replace(settings, database_url=url), {"TESTING": True}).test_client()


def get(client: FlaskClient, path: str, **params: str) -> Any:
    return client.get(path, query_string=params, headers=AUTH)


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}]
)
def test_v1_needs_a_known_bearer_token(api_client: FlaskClient, headers: dict[str, str]) -> None:
    response = api_client.get("/v1/can-send", headers=headers)
    assert response.status_code == 401 and response.get_json()["error"]


def test_any_of_the_configured_tokens_is_accepted(api_client: FlaskClient) -> None:
    response = api_client.get(
        "/v1/can-send?messaging_profile_id=p&from=%2B17735550188&to=%2B13125550100",
        headers={"Authorization": "Bearer other-token"},
    )
    assert response.status_code == 200


def test_subscriber_shows_status_and_carrier_blocks(api_client: FlaskClient) -> None:
    body = get(
        api_client, "/v1/subscribers/%2B13125550147", messaging_profile_id=PROFILE
    ).get_json()
    assert body["phone_number"] == "+13125550147" and body["status"] == "opted_out"
    assert body["messaging_profile_id"] == PROFILE and body["last_event_id"]
    assert body["carrier_blocks"] == [
        {
            "toll_free_number": "+18885550123",
            "blocked": True,
            "since": "2026-11-20T16:00:00.500000+00:00",
        }
    ]


def test_subscriber_path_accepts_a_literal_plus(api_client: FlaskClient) -> None:
    response = get(api_client, "/v1/subscribers/+13125550148", messaging_profile_id=PROFILE)
    assert response.get_json()["status"] == "opted_in"


def test_number_that_only_asked_for_help_is_seen_with_status_unknown(
    api_client: FlaskClient,
) -> None:
    response = get(api_client, "/v1/subscribers/%2B13125550149", messaging_profile_id=PROFILE)
    assert response.get_json()["status"] == "unknown"


def test_never_seen_number_is_404(api_client: FlaskClient) -> None:
    response = get(api_client, "/v1/subscribers/%2B13125550100", messaging_profile_id=PROFILE)
    assert response.status_code == 404 and "never been seen" in response.get_json()["error"]


@pytest.mark.parametrize(
    ("path", "params", "problem"),
    [
        ("/v1/subscribers/12345", {"messaging_profile_id": "p"}, "E.164"),
        ("/v1/subscribers/%2B13125550147/history", {}, "messaging_profile_id is required"),
        ("/v1/can-send", {"messaging_profile_id": "p", "from": "+17735550188"}, "to is required"),
    ],
)
def test_bad_parameters_are_400_naming_the_problem(
    api_client: FlaskClient, path: str, params: dict[str, str], problem: str
) -> None:
    response = get(api_client, path, **params)
    assert response.status_code == 400 and problem in response.get_json()["error"]


def test_history_lists_audit_rows_oldest_first(api_client: FlaskClient) -> None:
    events = get(
        api_client, "/v1/subscribers/%2B13125550147/history", messaging_profile_id=PROFILE
    ).get_json()["events"]
    assert [e["action"] for e in events] == ["opt_out", "carrier_block"]
    assert events[0]["seq"] < events[1]["seq"]
    assert isinstance(events[0]["honored_seconds"], float) and events[0]["text"] == "stop"


def test_can_send_refuses_opted_out_numbers(api_client: FlaskClient) -> None:
    body = get(
        api_client,
        "/v1/can-send",
        messaging_profile_id=PROFILE,
        **{"from": "+17735550188", "to": "+13125550147"},
    ).get_json()
    assert body == {
        "to": "+13125550147",
        "allowed": False,
        "reasons": ["opted_out"],
        "blocked_by": [
            {
                "reason": "opted_out",
                "messaging_profile_id": PROFILE,
                "occurred_at": "2026-11-20T16:00:00.500000+00:00",  # the STOP's occurred_at
                "scope": None,
            }
        ],
    }


def test_can_send_names_the_carrier_block_of_the_toll_free_sender(api_client: FlaskClient) -> None:
    body = get(
        api_client,
        "/v1/can-send",
        messaging_profile_id=PROFILE,
        **{"from": "+18885550123", "to": "+13125550147"},
    ).get_json()
    assert body["reasons"] == ["opted_out", "carrier_block"]


def test_can_send_batch_keeps_order_and_answers_each(api_client: FlaskClient) -> None:
    numbers = ["+13125550148", "+13125550147", "+13125550100", "+13125550147"]
    response = api_client.post(
        "/v1/can-send",
        headers=AUTH,
        json={"messaging_profile_id": PROFILE, "from": "+17735550188", "to": numbers},
    )
    results = response.get_json()["results"]
    assert [r["to"] for r in results] == numbers
    assert [r["allowed"] for r in results] == [True, False, True, False]


def test_can_send_batch_names_the_bad_number(api_client: FlaskClient) -> None:
    response = api_client.post(
        "/v1/can-send",
        headers=AUTH,
        json={"messaging_profile_id": PROFILE, "from": "+17735550188", "to": ["+13125550148", "5"]},
    )
    assert response.status_code == 400 and "to[1]" in response.get_json()["error"]


def test_can_send_batch_needs_a_json_object(api_client: FlaskClient) -> None:
    response = api_client.post(
        "/v1/can-send", headers=AUTH, data="[]", content_type="application/json"
    )
    assert response.status_code == 400


ROLE_TOKENS = "read:reader-token,write:writer-token,admin:admin-token,plain-token"


@pytest.fixture(scope="module")
def role_client(database_url: str, settings: Settings) -> FlaskClient:
    tokens = parse_api_tokens(ROLE_TOKENS)
    return create_app(
        replace(settings, database_url=database_url, api_tokens=tokens), {"TESTING": True}
    ).test_client()


@pytest.mark.parametrize(
    ("token", "can_send", "export"),
    [
        ("reader-token", 200, 403),
        ("writer-token", 200, 403),
        ("admin-token", 200, 200),
        ("plain-token", 200, 200),  # no role: the first version's access, reads and exports
        ("read:reader-token", 401, 401),  # the role prefix is not part of the secret
    ],
)
def test_each_role_makes_the_calls_it_may_and_gets_403_naming_the_role_for_others(
    role_client: FlaskClient, token: str, can_send: int, export: int
) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    query = {"messaging_profile_id": PROFILE, "from": "+17735550188", "to": "+13125550147"}
    assert role_client.get("/v1/can-send", headers=auth, query_string=query).status_code == (
        can_send
    )
    answer = role_client.get("/v1/exports/audit", headers=auth)
    assert answer.status_code == export
    if export == 403:
        assert answer.get_json() == {"error": "this call needs a token with the admin role"}
