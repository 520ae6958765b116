"""Consent scopes (spec §9): an opt-out on one profile blocks the profiles that share a group
with it, until a newer opt-in on the profile asked about; revoke-all is one group of "*"."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.config import ConfigError, Settings
from app.devtools.simulate import message_received
from app.web import create_app
from tests.conftest import API_TOKEN, apply_received

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
LONG_CODE = "+17735550188"


def at(hour: int) -> datetime:
    return datetime(2026, 11, 2, hour, tzinfo=UTC)


@pytest.fixture
def scoped(
    make_database: Callable[[], str], settings: Settings
) -> Callable[[str], tuple[FlaskClient, str]]:
    """A fresh database, and a client whose CONSENT_SCOPES is the value given."""

    def make(scopes: str) -> tuple[FlaskClient, str]:
        url = make_database()
        app = create_app(replace(settings, database_url=url, consent_scopes=scopes))
        return app.test_client(), url

    return make


def texted(url: str, number: str, *events: tuple[str, str, int]) -> None:
    """(profile, text, hour) events from ``number``, applied by the worker's code."""
    apply_received(
        url,
        [
            message_received(
                text=text,
                from_number=number,
                to_number=LONG_CODE,
                profile_id=profile,
                autoresponse_type=text,
                occurred_at=at(hour),
            )
            for profile, text, hour in events
        ],
    )


def can_send(client: FlaskClient, profile: str, number: str) -> dict[str, Any]:
    query = {"messaging_profile_id": profile, "from": LONG_CODE, "to": number}
    answer: dict[str, Any] = client.get("/v1/can-send", headers=AUTH, query_string=query).json
    return answer


def test_revoke_all_a_stop_on_one_profile_blocks_every_profile_until_a_newer_start_there(
    scoped: Callable[[str], tuple[FlaskClient, str]],
) -> None:
    client, url = scoped(json.dumps({"all": ["*"]}))
    number = "+13125550170"
    texted(url, number, ("P1", "STOP", 9))
    blocked = can_send(client, "P2", number)
    assert (blocked["allowed"], blocked["reasons"]) == (False, ["opted_out"])
    assert blocked["blocked_by"] == [
        {
            "reason": "opted_out",
            "messaging_profile_id": "P1",
            "occurred_at": at(9).isoformat(),
            "scope": "all",
        }
    ]
    assert can_send(client, "never-texted-profile", number)["allowed"] is False

    texted(url, number, ("P2", "START", 10))  # a newer opt-in on P2 re-opens P2 only
    assert can_send(client, "P2", number)["allowed"] is True
    assert can_send(client, "P1", number)["allowed"] is False
    assert can_send(client, "P3", number)["allowed"] is False


def test_an_older_start_elsewhere_does_not_reopen_and_an_older_stop_does_not_block(
    scoped: Callable[[str], tuple[FlaskClient, str]],
) -> None:
    client, url = scoped(json.dumps({"all": ["*"]}))
    number = "+13125550171"
    texted(url, number, ("P2", "START", 8), ("P1", "STOP", 9), ("P3", "START", 10))
    assert can_send(client, "P2", number)["allowed"] is False  # its START is older
    assert can_send(client, "P3", number)["allowed"] is True  # its START is newer


def test_per_category_groups_block_within_the_group_only(
    scoped: Callable[[str], tuple[FlaskClient, str]],
) -> None:
    client, url = scoped(json.dumps({"marketing": ["M1", "M2"], "alerts": ["A1"]}))
    number = "+13125550172"
    texted(url, number, ("M1", "STOP", 9))
    assert can_send(client, "M2", number)["blocked_by"][0]["scope"] == "marketing"
    assert can_send(client, "A1", number) == {
        "to": number,
        "allowed": True,
        "reasons": [],
        "blocked_by": [],
    }


def test_without_scopes_each_profile_is_its_own_scope(
    scoped: Callable[[str], tuple[FlaskClient, str]],
) -> None:
    client, url = scoped("")
    number = "+13125550173"
    texted(url, number, ("P1", "STOP", 9))
    assert can_send(client, "P1", number)["allowed"] is False
    assert can_send(client, "P2", number)["allowed"] is True


def test_a_scopes_file_is_read_again_when_it_changes(
    scoped: Callable[[str], tuple[FlaskClient, str]], tmp_path: Path
) -> None:
    scopes = tmp_path / "scopes.json"
    scopes.write_text("{}")
    client, url = scoped(str(scopes))
    number = "+13125550174"
    texted(url, number, ("P1", "STOP", 9))
    assert can_send(client, "P2", number)["allowed"] is True
    scopes.write_text(json.dumps({"all": ["*"]}))
    os.utime(scopes, (1e9, 1e9))  # a new mtime whatever the clock's resolution
    assert can_send(client, "P2", number)["allowed"] is False  # no restart, no rewrite
    scopes.write_text("{not json")
    os.utime(scopes, (2e9, 2e9))
    assert can_send(client, "P2", number)["allowed"] is False  # the last good groups stay


def test_subscriber_without_a_profile_lists_every_profiles_state(
    scoped: Callable[[str], tuple[FlaskClient, str]],
) -> None:
    client, url = scoped("")
    number = "+13125550175"
    texted(url, number, ("P1", "STOP", 9), ("P2", "START", 10))
    body = client.get(f"/v1/subscribers/%2B{number[1:]}", headers=AUTH).json
    assert body is not None
    assert [(p["messaging_profile_id"], p["status"]) for p in body["profiles"]] == [
        ("P1", "opted_out"),
        ("P2", "opted_in"),
    ]
    unseen = client.get(f"/v1/subscribers/%2B1312555{uuid.uuid4().int % 10_000:04d}", headers=AUTH)
    assert unseen.status_code == 404


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("[1, 2]", "must be an object of named groups"),
        ('{"all": "*"}', "group 'all' must be a list of messaging profile ids"),
        ("{nope", "is not JSON"),
        ("/no/such/scopes.json", "cannot read /no/such/scopes.json"),
    ],
)
def test_web_refuses_to_start_with_unusable_scopes_saying_why(
    settings: Settings, value: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match="refusing to start: CONSENT_SCOPES ") as raised:
        create_app(replace(settings, consent_scopes=value))
    assert problem in str(raised.value)
