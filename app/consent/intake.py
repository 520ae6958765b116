"""Consent that did not come by SMS (spec §10), validated: a whole request is checked before
anything is applied, and every problem names the item and the field."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from app.consent.phones import InvalidPhoneNumber, to_e164
from app.consent.values import Channel

MAX_EVENTS = 1000
ACTIONS = ("opt_out", "opt_in")
EVIDENCE_FIELDS = (
    "consent_text",
    "consent_text_version",
    "purpose",
    "captured_at",
    "capture_url",
    "ip_address",
    "user_agent",
    "reference",
)


class IntakeError(ValueError):
    """The request cannot be applied; the message names the item and the field."""


@dataclass(frozen=True)
class ConsentRecord:
    phone_number: str
    messaging_profile_id: str
    action: str  # opt_out | opt_in
    occurred_at: datetime
    channel: Channel
    idempotency_key: str | None
    evidence: bytes | None  # canonical JSON, the bytes whose SHA-256 the audit row holds
    evidence_sha256: str | None  # hex; set whenever evidence is


def parse_request(body: Any, now: datetime, tolerance_seconds: int) -> list[ConsentRecord]:
    """Every event of a POST /v1/consent body, or IntakeError naming the first problem."""
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise IntakeError('body must be a JSON object with "events": [ … ]')
    events = body["events"]
    if not 1 <= len(events) <= MAX_EVENTS:
        raise IntakeError(f"events holds {len(events)} items; 1 to {MAX_EVENTS} per call")
    latest = now + timedelta(seconds=tolerance_seconds)
    return [_record(item, f"events[{index}]", now, latest) for index, item in enumerate(events)]


def _text(item: dict[str, Any], name: str, where: str, required: bool = True) -> str | None:
    value = item.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or "\x00" in value or len(value) > 200:
        raise IntakeError(f"{where}.{name} must be a non-empty string of at most 200 characters")
    return value.strip()


_CHANNELS = {channel.value: channel for channel in Channel}


def _record(
    item: Any, where: str, now: datetime, latest: datetime, derive_key: bool = False
) -> ConsentRecord:
    """One event checked; ``derive_key`` gives a record without a key one made of its
    content (import_key)."""
    if not isinstance(item, dict):
        raise IntakeError(f"{where} must be an object")
    try:
        phone = to_e164(_text(item, "phone_number", where) or "")
    except InvalidPhoneNumber as exc:
        raise IntakeError(f"{where}.phone_number: {exc}") from None
    profile = _text(item, "messaging_profile_id", where) or ""
    action = item.get("action")
    if action not in ACTIONS:
        raise IntakeError(f"{where}.action must be one of {', '.join(ACTIONS)}")
    occurred_at = _when(item.get("occurred_at"), f"{where}.occurred_at", now)
    if occurred_at > latest:
        raise IntakeError(f"{where}.occurred_at is in the future")
    channel = _CHANNELS.get(item.get("channel", Channel.API))
    if channel is None:
        raise IntakeError(f"{where}.channel must be one of {', '.join(Channel)}")
    evidence = _evidence(item.get("evidence"), f"{where}.evidence", action)
    key = _text(item, "idempotency_key", where, required=False)
    if key is None and derive_key:
        key = import_key(profile, phone, action, occurred_at, channel)
    return ConsentRecord(
        phone,
        profile,
        action,
        occurred_at,
        channel,
        key,
        evidence,
        hashlib.sha256(evidence).hexdigest() if evidence else None,
    )


def _when(value: Any, where: str, now: datetime) -> datetime:
    if value is None:
        return now
    if not isinstance(value, str):
        raise IntakeError(f"{where} must be an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise IntakeError(f"{where} is not an ISO 8601 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_EVIDENCE_FIELDS = frozenset(EVIDENCE_FIELDS)


def _evidence(value: Any, where: str, action: str) -> bytes | None:
    if value is None:
        if action == "opt_in":
            raise IntakeError(f"{where} is required for opt_in: consent_text or its version")
        return None
    if not isinstance(value, dict):
        raise IntakeError(f"{where} must be an object")
    unknown = value.keys() - _EVIDENCE_FIELDS
    if unknown:
        raise IntakeError(f"{where} has unknown fields: {', '.join(sorted(unknown))}")
    if not all(isinstance(v, str) for v in value.values()):
        raise IntakeError(f"{where} fields must be strings")
    if action == "opt_in" and not (value.get("consent_text") or value.get("consent_text_version")):
        raise IntakeError(f"{where} needs consent_text or consent_text_version for opt_in")
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


_EVIDENCE_COLUMN = "evidence_"


def parse_import_row(
    row: dict[str, Any], where: str, now: datetime, channel: Channel
) -> ConsentRecord:
    """One row of an import (a CSV row or a JSONL object): the fields of POST /v1/consent,
    with ``evidence_*`` columns for evidence in CSV. Blank cells are absent; ``channel``
    applies where a row names none. A row without an idempotency key gets import_key's."""
    item: dict[str, Any] = {"channel": channel}
    evidence = {}
    for name, value in row.items():
        if value == "" or value is None:
            continue
        if name.startswith(_EVIDENCE_COLUMN):
            evidence[name[len(_EVIDENCE_COLUMN) :]] = value
        else:
            item[name] = value
    if evidence:
        item["evidence"] = evidence
    # A file keeps what was decided then: its times are history, none is "in the future"
    # by a clock's skew.
    return _record(item, where, now, latest=now, derive_key=True)


def import_key(
    profile: str, phone: str, action: str, occurred_at: datetime, channel: Channel
) -> str:
    """The idempotency key of an imported row without one, made of its content, so a re-run
    of the same file applies nothing twice."""
    content = "|".join((profile, phone, action, occurred_at.isoformat(), channel))
    return "import-" + hashlib.sha256(content.encode()).hexdigest()[:32]
