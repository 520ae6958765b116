"""Parse Telnyx webhook envelopes into plain values.

Only the ids, numbers, text and ``occurred_at`` are required of a ``message.received``
event; everything else is optional and unknown fields are tolerated (facts.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from app.phones import InvalidPhoneNumber, to_e164

MESSAGE_RECEIVED = "message.received"


class InvalidPayload(ValueError):
    """A verified body that cannot be processed; the message names the problem."""


@dataclass(frozen=True)
class Envelope:
    event_id: str
    event_type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class InboundMessage:
    event_id: str
    message_id: str | None
    occurred_at: datetime
    messaging_profile_id: str
    subscriber_number: str  # the sender of the text: payload.from
    our_number: str  # the number they texted: payload.to[0]
    text: str
    autoresponse_type: str | None


def parse_timestamp(value: Any, field: str) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise InvalidPayload(f"{field} is missing")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidPayload(f"{field} is not an ISO 8601 time: {value!r}") from None
    # Telnyx always sends an offset; a bare time is read as UTC rather than refused.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _loads(body: bytes) -> Any:
    # orjson is several times faster; the standard library reads what orjson refuses (lone
    # surrogates, integers over 64 bits, NaN), so it decides, and names the error, when they
    # disagree.
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def parse_envelope(body: bytes) -> Envelope:
    """Read the envelope every event type shares: ``data.id`` and ``data.event_type``."""
    try:
        document = _loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidPayload(f"body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidPayload("body is not a JSON object")
    data = document.get("data")
    if not isinstance(data, dict):
        raise InvalidPayload("data is missing or not an object")
    event_id = data.get("id")
    if not isinstance(event_id, str) or not event_id.strip():
        raise InvalidPayload("data.id is missing")
    if len(event_id) > 200:
        raise InvalidPayload("data.id is longer than 200 characters")
    event_type = data.get("event_type")
    if not isinstance(event_type, str) or not event_type.strip():
        raise InvalidPayload("data.event_type is missing")
    return Envelope(event_id=event_id.strip(), event_type=event_type.strip(), data=data)


def _number(value: Any, field: str) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("phone_number"), str):
        raise InvalidPayload(f"{field}.phone_number is missing")
    try:
        return to_e164(value["phone_number"])
    except InvalidPhoneNumber as exc:
        raise InvalidPayload(f"{field}.phone_number: {exc}") from None


def parse_inbound_message(envelope: Envelope) -> InboundMessage:
    """Read the fields of a ``message.received`` event that consent decisions need."""
    data = envelope.data
    occurred_at = parse_timestamp(data.get("occurred_at"), "data.occurred_at")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise InvalidPayload("data.payload is missing or not an object")
    profile = payload.get("messaging_profile_id")
    if not isinstance(profile, str) or not profile.strip():
        raise InvalidPayload("data.payload.messaging_profile_id is missing")
    recipients = payload.get("to")
    if not isinstance(recipients, list) or not recipients:
        raise InvalidPayload("data.payload.to is missing or empty")
    text = payload.get("text")
    if text is None:
        text = ""  # an MMS of media alone carries no text: ordinary, not malformed
    if not isinstance(text, str):
        raise InvalidPayload("data.payload.text is not a string")
    autoresponse = payload.get("autoresponse_type")
    message_id = payload.get("id")
    return InboundMessage(
        event_id=envelope.event_id,
        message_id=message_id if isinstance(message_id, str) else None,
        occurred_at=occurred_at,
        messaging_profile_id=profile.strip(),
        subscriber_number=_number(payload.get("from"), "data.payload.from"),
        # Group MMS lists several recipients; the first is the number the profile owns.
        our_number=_number(recipients[0], "data.payload.to[0]"),
        text=text,
        autoresponse_type=autoresponse if isinstance(autoresponse, str) else None,
    )
