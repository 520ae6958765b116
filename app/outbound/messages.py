"""What a webhook says and how it is signed (Standard Webhooks), and when a failed one is
tried again. Pure: no database, no network."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from app.consent.values import Action

SECRET_PREFIX = "whsec_"
PING = "ping"

# The audit actions a receiver hears about, by webhook type. Help texts and custom
# keywords change no consent: they stay in the audit log and the changes feed.
TYPE_OF_ACTION: dict[str, str] = {
    Action.OPT_OUT: "consent.opted_out",
    Action.OPT_IN: "consent.opted_in",
    Action.POSSIBLE_OPT_OUT: "consent.review_held",
    Action.REVIEW_CONFIRMED: "consent.review_resolved",
    Action.REVIEW_DISMISSED: "consent.review_resolved",
    Action.CARRIER_BLOCK: "carrier_block.set",
    Action.CARRIER_UNBLOCK: "carrier_block.lifted",
}
EVENT_TYPES = (*dict.fromkeys(TYPE_OF_ACTION.values()), PING)

# After the first attempt fails: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, then failed.
RETRY_DELAYS = tuple(timedelta(seconds=s) for s in (5, 300, 1800, 7200, 18000, 36000, 36000))
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# An endpoint that has failed without a success for this long is disabled.
FAILING_LIMIT = timedelta(days=5)
TIMEOUT_SECONDS = 10.0


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def webhook_id(endpoint_id: str, audit_seq: int) -> str:
    """Stable per (endpoint, audit row): a redelivery carries the same id, so a receiver
    that keeps the ids it has seen handles each change once."""
    return f"msg_{endpoint_id.removeprefix('ep_')}_{audit_seq}"


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
        "user-agent": "optout-sync",
    }


def retry_delay(attempts: int) -> timedelta | None:
    """How long after its ``attempts``-th failed attempt a webhook is tried again; None
    when it has had them all."""
    return RETRY_DELAYS[attempts - 1] if attempts <= len(RETRY_DELAYS) else None


GONE = 410  # the receiver says the endpoint is gone for good: disable it


@dataclass(frozen=True)
class Decision:
    """What becomes of a webhook after an attempt."""

    outcome: str  # delivered | retrying | failed | gone
    retry_after: timedelta | None = None


DELIVERED, RETRYING, FAILED, GONE_OUTCOME = "delivered", "retrying", "failed", "gone"


def decide(attempts: int, status: int | None) -> Decision:
    """After the ``attempts``-th attempt answered ``status`` (None: no answer): a 2xx is
    delivered; 410 disables the endpoint; otherwise it is tried again on the schedule,
    and failed (replayable) when the schedule is spent."""
    if status is not None and 200 <= status < 300:
        return Decision(DELIVERED)
    if status == GONE:
        return Decision(GONE_OUTCOME)
    delay = retry_delay(attempts)
    return Decision(FAILED) if delay is None else Decision(RETRYING, delay)
