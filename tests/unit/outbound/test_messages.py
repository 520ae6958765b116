"""The webhook format, signature and retry schedule (spec §11), checked against the
Standard Webhooks reference library."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.outbound import messages


def test_a_signature_verifies_with_the_reference_library_and_only_for_its_body() -> None:
    secret = messages.new_secret()
    body = b'{"type":"consent.opted_out","timestamp":"2026-05-01T00:00:00.000000+00:00"}'
    headers = messages.headers(secret, "msg_abc_1", int(time.time()), body)
    assert Webhook(secret).verify(body, headers)["type"] == "consent.opted_out"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(messages.new_secret()).verify(body, headers)


def test_secrets_are_whsec_base64_and_unique() -> None:
    made = {messages.new_secret() for _ in range(100)}
    assert len(made) == 100 and all(s.startswith("whsec_") for s in made)


def test_webhook_ids_are_stable_per_endpoint_and_audit_row() -> None:
    assert messages.webhook_id("ep_1f2e", 42) == messages.webhook_id("ep_1f2e", 42) == "msg_1f2e_42"
    assert messages.webhook_id("ep_1f2e", 43) != messages.webhook_id("ep_9a9a", 42)


def test_the_retry_schedule_then_failed() -> None:
    delays = [messages.decide(attempt, 500).retry_after for attempt in range(1, 8)]
    assert delays == [
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
        timedelta(hours=10),
    ]
    assert messages.decide(8, 500) == messages.Decision("failed")
    assert messages.decide(8, None) == messages.Decision("failed")
    assert messages.decide(1, None).outcome == "retrying"  # no answer: timed out, refused


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (299, "delivered"),
        (301, "retrying"),
        (410, "gone"),
        (429, "retrying"),
    ],
)
def test_what_an_answer_means(status: int, outcome: str) -> None:
    assert messages.decide(1, status).outcome == outcome


def test_every_audit_action_that_changes_consent_has_a_type() -> None:
    assert set(messages.EVENT_TYPES) == {
        "consent.opted_out",
        "consent.opted_in",
        "consent.review_held",
        "consent.review_resolved",
        "carrier_block.set",
        "carrier_block.lifted",
        "ping",
    }
