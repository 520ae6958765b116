"""Parse Telnyx webhook envelopes into plain values.

Only the ids, numbers, text and ``occurred_at`` are required of a ``message.received``
event; everything else is optional and unknown fields are tolerated (facts.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from app.consent.phones import InvalidPhoneNumber, to_e164, to_our_number

MESSAGE_RECEIVED = "message.received"
MESSAGE_SENT = "message.sent"
MESSAGE_FINALIZED = "message.finalized"
# Reports on messages the organisation sent: their errors may say a recipient opted out.
SEND_REPORTS = frozenset({MESSAGE_SENT, MESSAGE_FINALIZED})
# The one send error code that can mean the recipient opted out (consent.send_errors).
SEND_BLOCK_CODE = "40300"


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
    our_number: str  # the number they texted: payload.to[0], E.164 or a short code
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
    event_id = _envelope_text(data.get("id"), "data.id")
    if len(event_id) > 200:
        raise InvalidPayload("data.id is longer than 200 characters")
    event_type = _envelope_text(data.get("event_type"), "data.event_type")
    return Envelope(event_id=event_id, event_type=event_type, data=data)


def _envelope_text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidPayload(f"{field} is missing")
    if "\x00" in value:  # PostgreSQL text cannot hold it; the event is kept without the id
        raise InvalidPayload(f"{field} contains a NUL character")
    return value.strip()


def _number(value: Any, field: str, read: Callable[[str], str] = to_e164) -> str:
    """A number given as {"phone_number": …}, or as a bare string (older payloads)."""
    if isinstance(value, dict):
        value, field = value.get("phone_number"), f"{field}.phone_number"
    if not isinstance(value, str):
        raise InvalidPayload(f"{field} is missing")
    try:
        return read(value)
    except InvalidPhoneNumber as exc:
        raise InvalidPayload(f"{field}: {exc}") from None


def _our_number(recipients: Any) -> str:
    """The number the subscriber texted: payload.to, a list (group MMS lists several; the
    first is the profile's) or, in older payloads, a single string. A short code or E.164."""
    if isinstance(recipients, list):
        if not recipients:
            raise InvalidPayload("data.payload.to is empty")
        return _number(recipients[0], "data.payload.to[0]", to_our_number)
    if recipients is None:
        raise InvalidPayload("data.payload.to is missing")
    return _number(recipients, "data.payload.to", to_our_number)


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
        our_number=_our_number(payload.get("to")),
        text=text,
        autoresponse_type=autoresponse if isinstance(autoresponse, str) else None,
    )


@dataclass(frozen=True)
class SendError:
    """One error Telnyx reported on one recipient of a message we sent."""

    event_id: str
    message_id: str | None
    occurred_at: datetime
    messaging_profile_id: str
    our_number: str  # payload.from: the number we sent from
    recipient: str
    code: str
    title: str | None
    detail: str | None


def _failed_recipients(recipients: Any) -> list[Any]:
    """The recipients the errors are about: those whose status says the send failed, or the
    only recipient when none says so (an error on a one-recipient message is its own)."""
    if isinstance(recipients, dict | str):
        recipients = [recipients]
    if not isinstance(recipients, list):
        return []
    failed = [r for r in recipients if isinstance(r, dict) and "fail" in str(r.get("status") or "")]
    return failed or (recipients if len(recipients) == 1 else [])


def parse_send_errors(envelope: Envelope) -> list[SendError]:
    """The 40300 errors of a ``message.sent`` or ``message.finalized``, one per failed
    recipient and error; [] when it reports none (other codes say nothing about consent,
    and a receipt that only has those is not read further). InvalidPayload when it has one
    but lacks what applying it needs."""
    payload = envelope.data.get("payload")
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or not isinstance(errors, list) or not errors:
        return []
    errors = [
        e
        for e in errors
        if isinstance(e, dict) and str(e.get("code") or "").strip() == SEND_BLOCK_CODE
    ]
    if not errors:
        return []
    occurred_at = parse_timestamp(envelope.data.get("occurred_at"), "data.occurred_at")
    profile = payload.get("messaging_profile_id")
    if not isinstance(profile, str) or not profile.strip():
        raise InvalidPayload("data.payload.messaging_profile_id is missing")
    our_number = _number(payload.get("from"), "data.payload.from", to_our_number)
    message_id = payload.get("id")
    recipients = _failed_recipients(payload.get("to"))
    return [
        SendError(
            event_id=envelope.event_id,
            message_id=message_id if isinstance(message_id, str) else None,
            occurred_at=occurred_at,
            messaging_profile_id=profile.strip(),
            our_number=our_number,
            recipient=_number(recipient, "data.payload.to"),
            code=str(error["code"]).strip(),
            title=error.get("title") if isinstance(error.get("title"), str) else None,
            detail=error.get("detail") if isinstance(error.get("detail"), str) else None,
        )
        for recipient in recipients
        for error in errors
    ]
