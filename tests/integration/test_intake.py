"""Consent from every channel (spec §10): POST /v1/consent against a real database, by the
same last-writer-wins rules as texts, with evidence the audit chain covers."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from app.cli import main
from app.config import Settings, parse_api_tokens
from app.devtools.simulate import message_received
from app.web import create_app
from tests.conftest import apply_received

WRITE = {"Authorization": "Bearer writer"}
READ = {"Authorization": "Bearer reader"}
PROFILE = "intake-profile"
EVIDENCE = {"consent_text": "Yes, text me deals. Reply STOP to opt out.", "purpose": "marketing"}


def at(hour: int) -> str:
    return datetime(2026, 11, 3, hour, tzinfo=UTC).isoformat()


@pytest.fixture
def intake(make_database: Callable[[], str], settings: Settings) -> tuple[FlaskClient, str]:
    url = make_database()
    tokens = parse_api_tokens("read:reader,write:writer,admin:admin")
    app = create_app(replace(settings, database_url=url, api_tokens=tokens))
    return app.test_client(), url


def consent(client: FlaskClient, *events: dict[str, Any], headers: dict[str, str] = WRITE) -> Any:
    return client.post("/v1/consent", json={"events": list(events)}, headers=headers)


def event(number: str, action: str, hour: int, **extra: Any) -> dict[str, Any]:
    return {
        "phone_number": number,
        "messaging_profile_id": PROFILE,
        "action": action,
        "occurred_at": at(hour),
        **extra,
    }


def status(url: str, number: str) -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT status FROM subscribers WHERE messaging_profile_id = %s AND phone_number = %s",
            (PROFILE, number),
        ).fetchone()
    return row[0] if row else None


def texted_start(url: str, number: str, hour: int) -> None:
    start = message_received(
        text="START",
        from_number=number,
        to_number="+17735550188",
        profile_id=PROFILE,
        autoresponse_type="START",
        occurred_at=datetime.fromisoformat(at(hour)),
    )
    apply_received(url, [start])


def test_an_agents_opt_out_beats_an_older_text_and_loses_to_a_newer_one(
    intake: tuple[FlaskClient, str],
) -> None:
    client, url = intake
    number = "+13125550180"
    texted_start(url, number, 9)
    answer = consent(client, event(number, "opt_out", 10, channel="agent"))
    assert answer.status_code == 200, answer.json
    assert [r["status"] for r in answer.json["results"]] == ["applied"]
    assert status(url, number) == "opted_out"

    texted_start(url, number, 11)
    assert status(url, number) == "opted_in"
    late = consent(client, event(number, "opt_out", 10, channel="voice"))
    assert [r["status"] for r in late.json["results"]] == ["superseded"]
    assert status(url, number) == "opted_in"
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT source, channel, superseded FROM audit_log WHERE phone_number = %s"
            " AND source = 'api' ORDER BY seq",
            (number,),
        ).fetchall()
    assert rows == [("api", "agent", False), ("api", "voice", True)]


def test_an_opt_in_without_evidence_is_refused_naming_the_item_and_nothing_applies(
    intake: tuple[FlaskClient, str],
) -> None:
    client, url = intake
    answer = consent(
        client, event("+13125550181", "opt_out", 9), event("+13125550182", "opt_in", 9)
    )
    assert answer.status_code == 400
    assert answer.json["error"].startswith("events[1].evidence is required for opt_in")
    assert status(url, "+13125550181") is None  # the valid item was not applied either


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ({"phone_number": "3125550183", "action": "opt_out"}, "events[0].phone_number:"),
        ({"action": "stop"}, "events[0].action must be one of opt_out, opt_in"),
        ({"occurred_at": "2999-01-01T00:00:00+00:00"}, "events[0].occurred_at is in the future"),
        ({"channel": "fax"}, "events[0].channel must be one of"),
        ({"evidence": {"consent_text": "x", "shoe_size": "9"}}, "has unknown fields: shoe_size"),
    ],
)
def test_bad_items_are_400_naming_the_field(
    intake: tuple[FlaskClient, str], item: dict[str, Any], problem: str
) -> None:
    client, _ = intake
    answer = consent(client, event("+13125550183", "opt_out", 9) | item)
    assert answer.status_code == 400
    assert problem in answer.json["error"]


def test_a_repeated_idempotency_key_answers_duplicate_with_the_first_result(
    intake: tuple[FlaskClient, str],
) -> None:
    client, url = intake
    key = f"form-{uuid.uuid4()}"
    number = "+13125550184"
    first = consent(
        client,
        event(number, "opt_in", 9, idempotency_key=key, evidence=EVIDENCE, channel="web_form"),
    ).json["results"][0]
    assert first["status"] == "applied"
    again = consent(
        client,
        event(number, "opt_in", 9, idempotency_key=key, evidence=EVIDENCE, channel="web_form"),
    ).json["results"][0]
    assert again == {"status": "duplicate", "seq": first["seq"]}
    with psycopg.connect(url) as conn:
        count = conn.execute(
            "SELECT count(*) FROM audit_log WHERE phone_number = %s", (number,)
        ).fetchone()
    assert count == (1,)


def test_a_read_token_gets_403_on_intake(intake: tuple[FlaskClient, str]) -> None:
    client, _ = intake
    answer = consent(client, event("+13125550185", "opt_out", 9), headers=READ)
    assert answer.status_code == 403
    assert answer.json == {"error": "this call needs a token with the write role"}


def test_evidence_is_stored_once_its_hash_is_in_the_chain_and_an_edit_is_named(
    intake: tuple[FlaskClient, str],
) -> None:
    client, url = intake
    number = "+13125550186"
    (result,) = consent(
        client, event(number, "opt_in", 9, evidence=EVIDENCE, channel="web_form")
    ).json["results"]
    stored = json.dumps(EVIDENCE, sort_keys=True, separators=(",", ":")).encode()
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT a.evidence_sha256, e.body FROM audit_log a"
            " JOIN consent_evidence e USING (event_id) WHERE a.seq = %s",
            (result["seq"],),
        ).fetchone()
    assert row is not None and row[0] == hashlib.sha256(stored).hexdigest()
    assert bytes(row[1]) == stored

    runner = CliRunner()
    assert runner.invoke(main, ["audit", "verify"], env={"DATABASE_URL": url}).exit_code == 0
    with psycopg.connect(url, autocommit=True) as conn:  # what a superuser could do
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE consent_evidence SET body = %s", (b'{"consent_text":"no"}',))
    broken = runner.invoke(main, ["audit", "verify"], env={"DATABASE_URL": url})
    assert broken.exit_code == 1
    assert f"BROKEN at seq {result['seq']}: its evidence does not match" in broken.output


def test_an_admin_reads_the_evidence_back_exactly_as_stored(
    intake: tuple[FlaskClient, str],
) -> None:
    client, _ = intake
    (result,) = consent(
        client, event("+13125550187", "opt_in", 9, evidence=EVIDENCE, channel="paper")
    ).json["results"]
    path = f"/v1/consent/evidence/{result['seq']}"
    assert client.get(path, headers=WRITE).status_code == 403
    answer = client.get(path, headers={"Authorization": "Bearer admin"})
    assert answer.status_code == 200 and answer.json == EVIDENCE
