"""What a refused send says about consent (spec §12), pure.

Telnyx answers a send to a number that texted STOP with error 40300, "Blocked due to STOP
message" ("Messages cannot be sent from … to … due to an existing block rule"). The same
code is also titled "Destination unreachable", so the words decide, not the code alone:
words of an opt-out make it one; a 40300 without them holds the number for a person to
look at; any other code (40008 "Undeliverable", …) says nothing about consent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from app.consent.keywords import POSSIBLE_OPT_OUT, STOP, Verdict
from app.consent.phones import InvalidPhoneNumber, to_e164, to_our_number
from app.consent.rules import ConsentEvent
from app.consent.values import Source
from app.telnyx.events import SEND_BLOCK_CODE, InboundMessage, SendError

OPT_OUT = "send_block"
UNCLEAR = "send_block_unclear"  # the review reason

_OPT_OUT_WORDS = re.compile(
    r"\bstop\b|\bopt(?:ed)?[- ]?out\b|\bunsubscribed?\b|\bblock rule\b", re.IGNORECASE
)


def classify(code: object, title: object, detail: object) -> str | None:
    """OPT_OUT, UNCLEAR, or None when the error says nothing about consent."""
    if str(code).strip() != SEND_BLOCK_CODE:
        return None
    words = " ".join(part for part in (title, detail) if isinstance(part, str))
    return OPT_OUT if _OPT_OUT_WORDS.search(words) else UNCLEAR


VERDICTS = {
    OPT_OUT: Verdict(STOP, Source.TELNYX_SEND_BLOCK, None, "", OPT_OUT),
    UNCLEAR: Verdict(POSSIBLE_OPT_OUT, Source.TELNYX_SEND_BLOCK, None, "", UNCLEAR),
}


def describe(code: object, title: object, detail: object) -> str:
    """The error as the audit row's text: what a reviewer reads."""
    parts = [str(code)] + [p.strip() for p in (title, detail) if isinstance(p, str) and p.strip()]
    return " — ".join(parts)


def consent_events(errors: Sequence[SendError], received_at: datetime | None) -> list[ConsentEvent]:
    """The consent events a report's errors make: per recipient, its opt-out if an error
    says so, else its unclear 40300; nothing for a recipient whose errors say neither."""
    decided: dict[str, tuple[str, SendError]] = {}
    for error in errors:
        kind = classify(error.code, error.title, error.detail)
        if kind is not None and decided.get(error.recipient, ("",))[0] != OPT_OUT:
            decided[error.recipient] = (kind, error)
    several = len(decided) > 1  # a group message: one audit row per recipient, ids apart
    return [
        ConsentEvent(
            InboundMessage(
                event_id=f"{error.event_id}#{recipient}" if several else error.event_id,
                message_id=error.message_id,
                occurred_at=error.occurred_at,
                messaging_profile_id=error.messaging_profile_id,
                subscriber_number=recipient,
                our_number=error.our_number,
                text=describe(error.code, error.title, error.detail),
                autoresponse_type=None,
            ),
            VERDICTS[kind],
            received_at,
        )
        for recipient, (kind, error) in decided.items()
    ]


class ReportError(ValueError):
    """A reported send error that cannot be applied; the message names the field."""


# What Telnyx's errors are titled, for a report or a simulation that gives only the code.
TITLES = {SEND_BLOCK_CODE: "Blocked due to STOP message", "40008": "Undeliverable"}


def parse_report(body: Any, now: datetime, tolerance_seconds: int) -> SendError:
    """A POST /v1/send-errors body: what a sender got back synchronously from Telnyx."""
    if not isinstance(body, dict):
        raise ReportError("body must be a JSON object")

    def text(name: str, required: bool = True) -> str | None:
        value = body.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip() or "\x00" in value:
            raise ReportError(f"{name} must be a non-empty string")
        return value.strip()[:1000]

    code = body.get("code")
    if not isinstance(code, str | int) or isinstance(code, bool) or not str(code).strip():
        raise ReportError("code must be Telnyx's error code, such as 40300")
    try:
        recipient = to_e164(text("to") or "")
        ours = to_our_number(text("from") or "")
    except InvalidPhoneNumber as exc:
        raise ReportError(f"to/from: {exc}") from None
    occurred_at = now
    if body.get("occurred_at") is not None:
        try:
            occurred_at = datetime.fromisoformat(text("occurred_at") or "")
        except ValueError:
            raise ReportError("occurred_at must be an ISO 8601 time") from None
        if occurred_at.tzinfo is None:
            occurred_at = occurred_at.replace(tzinfo=UTC)
        if occurred_at > now + timedelta(seconds=tolerance_seconds):
            raise ReportError("occurred_at is in the future")
    report = (text("messaging_profile_id") or "", ours, recipient, str(code).strip())
    title, detail = text("title", required=False), text("detail", required=False)
    content = "|".join((*report, title or "", detail or "", occurred_at.isoformat()))
    return SendError(
        # The same report twice is one event: its id is made of its content.
        event_id="send-error:" + hashlib.sha256(content.encode()).hexdigest()[:32],
        message_id=None,
        occurred_at=occurred_at,
        messaging_profile_id=report[0],
        our_number=ours,
        recipient=recipient,
        code=report[3],
        title=title,
        detail=detail,
    )
