"""Telnyx tells us what we missed (spec §12): a send refused with 40300 because the recipient
texted STOP is an opt-out; an unclear 40300 holds the number for review; other codes change
nothing. Signed reports go through the real receiver, then the worker's own code."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient
from nacl.signing import SigningKey
from psycopg_pool import ConnectionPool

from app.config import Settings, parse_api_tokens
from app.services import apply_events, reconcile, send_errors
from app.web import create_app
from tests.conftest import example, fresh_ids, new_profile, post_webhook
from tests.integration.test_observability import sample

RECIPIENT = "+13125550147"


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(database_url, min_size=1, max_size=1, open=True) as opened:
        yield opened


def report(name: str, profile: str, occurred_at: str | None = None) -> dict[str, Any]:
    payload = fresh_ids(example(name), profile)
    if occurred_at:
        payload["data"]["occurred_at"] = occurred_at
    return payload


def deliver(
    client: FlaskClient,
    key: SigningKey,
    pool: ConnectionPool,
    *payloads: dict[str, Any],
    policy: str = "review",
) -> list[str]:
    """Post each signed, then let the worker's code apply what is pending; the answers."""
    answers = [post_webhook(client, p, key).get_json()["status"] for p in payloads]
    apply_events.drain(
        pool,
        batch_size=50,
        max_attempts=3,
        rules=apply_events.Rules(possible_opt_out_policy=policy),
    )
    return answers


def state(url: str, profile: str) -> tuple[str | None, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        status = conn.execute(
            "SELECT status FROM subscribers WHERE messaging_profile_id = %s AND phone_number = %s",
            (profile, RECIPIENT),
        ).fetchone()
        audit = conn.execute(
            "SELECT action, source, telnyx_block, previous_status, new_status, superseded,"
            " our_number, text FROM audit_log WHERE messaging_profile_id = %s ORDER BY seq",
            (profile,),
        ).fetchall()
    return (status[0] if status else None), audit


def texted_start(profile: str) -> dict[str, Any]:
    payload = report("start_long_code", profile, "2026-11-20T16:00:00.000+00:00")
    payload["data"]["payload"]["from"]["phone_number"] = RECIPIENT
    return payload


def test_a_send_blocked_by_stop_opts_out_a_number_we_held_as_opted_in(
    client: FlaskClient, signing_key: SigningKey, pool: ConnectionPool, settings: Settings
) -> None:
    profile = new_profile()
    url = settings.database_url or ""
    metrics = create_app(settings, {"TESTING": True}).test_client()

    def drift() -> float:  # the counter is shared by the module's tests: compare, not equal
        text = metrics.get("/metrics").get_data(as_text=True)
        series = 'optout_sync_drift_total{source="telnyx_send_block"}'
        return sample(text, series) if series in text else 0.0

    before = drift()
    deliver(client, signing_key, pool, texted_start(profile))
    assert state(url, profile)[0] == "opted_in"

    assert deliver(client, signing_key, pool, report("message_finalized_stop_block", profile)) == [
        "accepted"
    ]
    status, audit = state(url, profile)
    assert status == "opted_out"
    action, source, telnyx_block, previous, new, superseded, ours, text = audit[-1]
    assert (action, source, telnyx_block) == ("opt_out", "telnyx_send_block", True)
    assert (previous, new, superseded, ours) == ("opted_in", "opted_out", False, "+17735550188")
    assert text.startswith("40300 — Blocked due to STOP message — Messages cannot be sent")
    assert drift() == before + 1  # we held it as textable: drift

    # message.sent reported the same refusal: applied again, changing nothing, no new drift.
    deliver(client, signing_key, pool, report("message_sent_stop_block", profile))
    assert state(url, profile)[1][-1][3:5] == ("opted_out", "opted_out")
    assert drift() == before + 1


@pytest.mark.parametrize("policy", ["review", "opt_out", "ignore"])
def test_an_unclear_40300_holds_the_number_for_review_whatever_the_policy(
    client: FlaskClient,
    signing_key: SigningKey,
    pool: ConnectionPool,
    settings: Settings,
    policy: str,
) -> None:
    profile = new_profile()
    deliver(client, signing_key, pool, texted_start(profile))
    deliver(
        client, signing_key, pool, report("message_finalized_unreachable", profile), policy=policy
    )
    status, audit = state(settings.database_url or "", profile)
    assert status == "review"
    assert audit[-1][:2] == ("possible_opt_out", "telnyx_send_block")
    assert (
        audit[-1][-1]
        == "40300 — Destination unreachable — The destination number could not be reached."
    )


def test_other_codes_and_clean_receipts_change_nothing(
    client: FlaskClient, signing_key: SigningKey, pool: ConnectionPool, settings: Settings
) -> None:
    profile = new_profile()
    odd = report("message_finalized_undeliverable", profile)
    odd["data"]["payload"]["from"]["phone_number"] = "not a number"  # not read: no 40300
    answers = deliver(
        client,
        signing_key,
        pool,
        report("message_finalized_undeliverable", profile),
        report("message_finalized", profile),
        odd,
    )
    assert answers == ["ignored", "ignored", "ignored"]  # kept, but nothing for the worker
    assert state(settings.database_url or "", profile) == (None, [])


def test_duplicate_and_late_reports(
    client: FlaskClient, signing_key: SigningKey, pool: ConnectionPool, settings: Settings
) -> None:
    profile = new_profile()
    url = settings.database_url or ""
    refused = report("message_finalized_stop_block", profile, "2026-11-20T15:00:00.000+00:00")
    deliver(client, signing_key, pool, texted_start(profile))  # START at 16:00
    # The refusal happened before the START (15:00) and is reported late, twice.
    assert deliver(client, signing_key, pool, refused, refused) == ["accepted", "duplicate"]
    status, audit = state(url, profile)
    assert status == "opted_in"  # the newer START stands
    assert [(row[0], row[1], row[5]) for row in audit] == [
        ("opt_in", "telnyx", False),
        ("opt_out", "telnyx_send_block", True),  # recorded, superseded, once
    ]


def test_a_refusal_from_a_toll_free_number_also_sets_its_carrier_block(
    client: FlaskClient, signing_key: SigningKey, pool: ConnectionPool, settings: Settings
) -> None:
    profile = new_profile()
    deliver(client, signing_key, pool, report("message_finalized_toll_free_block", profile))
    with psycopg.connect(settings.database_url or "") as conn:
        blocked = conn.execute(
            "SELECT blocked, messaging_profile_id FROM carrier_blocks"
            " WHERE toll_free_number = '+18885550123' AND phone_number = %s",
            (RECIPIENT,),
        ).fetchone()
    assert blocked == (True, profile)
    assert [row[:2] for row in state(settings.database_url or "", profile)[1]] == [
        ("opt_out", "telnyx_send_block"),
        ("carrier_block", "telnyx_send_block"),
    ]


def test_a_report_with_a_40300_but_no_recipient_number_is_kept_invalid(
    client: FlaskClient, signing_key: SigningKey, settings: Settings
) -> None:
    payload = report("message_finalized_stop_block", new_profile())
    del payload["data"]["payload"]["to"][0]["phone_number"]
    answer = post_webhook(client, payload, signing_key)
    assert answer.status_code == 400
    assert "data.payload.to" in answer.get_json()["error"]


def test_a_sender_reports_what_telnyx_answered_synchronously(
    settings: Settings, database_url: str
) -> None:
    tokens = parse_api_tokens("write:sender,read:reader")
    client = create_app(replace(settings, api_tokens=tokens), {"TESTING": True}).test_client()
    sender = {"Authorization": "Bearer sender"}
    profile = new_profile()
    refused = {
        "messaging_profile_id": profile,
        "from": "+17735550188",
        "to": RECIPIENT,
        "code": "40300",
        "title": "Blocked due to STOP message",
        "detail": "Messages cannot be sent from '+17735550188' to '+13125550147' due to an"
        " existing block rule.",
        "occurred_at": "2026-11-20T17:00:00Z",
    }
    first = client.post("/v1/send-errors", json=refused, headers=sender).get_json()
    assert first["result"] == "opted_out" and first["drift"] is True
    again = client.post("/v1/send-errors", json=refused, headers=sender).get_json()
    assert again == {"result": "duplicate", "seq": first["seq"], "drift": False}
    assert state(database_url, profile)[0] == "opted_out"

    unclear = refused | {"to": "+13125550148", "title": "Destination unreachable", "detail": None}
    held = client.post("/v1/send-errors", json=unclear, headers=sender).get_json()
    assert held["result"] == "held_for_review" and held["drift"] is False
    other = refused | {"code": 40008, "title": "Undeliverable"}
    assert client.post("/v1/send-errors", json=other, headers=sender).get_json() == {
        "result": "ignored",
        "seq": None,
        "drift": False,
    }
    bad = client.post("/v1/send-errors", json=refused | {"to": "3125550147"}, headers=sender)
    assert bad.status_code == 400 and "to/from" in bad.get_json()["error"]
    missing = client.post("/v1/send-errors", json={"to": RECIPIENT}, headers=sender)
    assert missing.status_code == 400
    refused_role = client.post(
        "/v1/send-errors", json=refused, headers={"Authorization": "Bearer reader"}
    )
    assert refused_role.status_code == 403


def test_reconcile_counts_drift_the_same_way(settings: Settings, database_url: str) -> None:
    profile = new_profile()
    missed = {
        "from": "+17735550188",  # Telnyx lists a block rule as from our number to theirs
        "to": "+13125550190",
        "messaging_profile_id": profile,
        "keyword": "STOP",
        "created_at": "2026-11-20T12:00:00Z",
    }
    with psycopg.connect(database_url) as conn, conn.transaction():
        reconcile.record_missing(conn, [missed])
    with psycopg.connect(database_url) as conn:
        rows = send_errors.drift(conn, None, profile)
    assert [(r["phone_number"], r["source"], r["previous_status"]) for r in rows] == [
        ("+13125550190", "reconcile", "unknown")
    ]
    text = (
        create_app(settings, {"TESTING": True}).test_client().get("/metrics").get_data(as_text=True)
    )
    assert sample(text, 'optout_sync_drift_total{source="reconcile"}') >= 1
