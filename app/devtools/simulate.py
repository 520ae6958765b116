"""Build and send realistic, signed Telnyx ``message.received`` webhooks (dev and tests)."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

DEV_PROFILE_ID = "dev-messaging-profile"


def message_received(
    *,
    text: str,
    from_number: str,
    to_number: str,
    profile_id: str = DEV_PROFILE_ID,
    autoresponse_type: str | None = None,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
    line_type: str = "Wireless",
) -> dict[str, Any]:
    occurred = (occurred_at or datetime.now(UTC)).isoformat(timespec="milliseconds")
    return {
        "data": {
            "event_type": "message.received",
            "id": event_id or str(uuid.uuid4()),
            "occurred_at": occurred,
            "record_type": "event",
            "payload": {
                "autoresponse_type": autoresponse_type,
                "cc": [],
                "completed_at": None,
                "cost": None,
                "direction": "inbound",
                "encoding": "GSM-7" if text.isascii() else "UCS-2",
                "errors": [],
                "from": {
                    "carrier": "T-Mobile USA",
                    "line_type": line_type,
                    "phone_number": from_number,
                },
                "id": str(uuid.uuid4()),
                "is_spam": False,
                "media": [],
                "messaging_profile_id": profile_id,
                "organization_id": "00000000-0000-4000-8000-000000000000",
                "parts": 1,
                "received_at": occurred,
                "record_type": "message",
                "sent_at": None,
                "subject": "",
                "tags": [],
                "text": text,
                "to": [
                    {
                        "carrier": "Telnyx",
                        "line_type": "Wireless",
                        "phone_number": to_number,
                        "status": "webhook_delivered",
                    }
                ],
                "type": "SMS",
                "valid_until": None,
                "webhook_failover_url": None,
                "webhook_url": None,
            },
        },
        "meta": {"attempt": 1, "delivered_to": None},
    }


def sign(body: bytes, key: SigningKey, timestamp: int | None = None) -> dict[str, str]:
    """The headers Telnyx sends: Ed25519 over ``{timestamp}|{body}``."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(stamp.encode() + b"|" + body).signature
    return {
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
        "telnyx-timestamp": stamp,
        "content-type": "application/json",
        "user-agent": "telnyx-webhooks",
    }


def load_signing_key(value: str) -> SigningKey:
    """A base64 Ed25519 private key: the 32-byte seed or libsodium's 64-byte form."""
    raw = base64.b64decode(value.strip(), validate=True)
    if len(raw) not in (32, 64):
        raise ValueError(f"signing key decodes to {len(raw)} bytes; expected 32 (or 64)")
    return SigningKey(raw[:32])


def dev_signing_key(data_dir: Path) -> SigningKey:
    """The dev key in DATA_DIR, made on first use."""
    path = data_dir / "dev-signing-key"
    if path.exists():
        return load_signing_key(path.read_text())
    data_dir.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    path.write_text(base64.b64encode(bytes(key)).decode() + "\n")
    path.chmod(0o600)
    return key


def public_key_b64(key: SigningKey) -> str:
    return base64.b64encode(bytes(key.verify_key)).decode()


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = 10) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def message_finalized(
    *,
    from_number: str,
    to_number: str,
    profile_id: str = DEV_PROFILE_ID,
    error_code: str,
    title: str | None,
    detail: str | None,
) -> dict[str, Any]:
    """A message.finalized for a text we sent that Telnyx refused with ``error_code``: from
    our number to the subscriber, as Telnyx reports it."""
    occurred = datetime.now(UTC).isoformat(timespec="milliseconds")
    return {
        "data": {
            "event_type": "message.finalized",
            "id": str(uuid.uuid4()),
            "occurred_at": occurred,
            "record_type": "event",
            "payload": {
                "id": str(uuid.uuid4()),
                "record_type": "message",
                "direction": "outbound",
                "type": "SMS",
                "messaging_profile_id": profile_id,
                "from": {"carrier": "Telnyx", "line_type": "Wireless", "phone_number": from_number},
                "to": [
                    {
                        "carrier": "T-Mobile USA",
                        "line_type": "Wireless",
                        "phone_number": to_number,
                        "status": "sending_failed",
                    }
                ],
                "text": "Your order has shipped.",
                "parts": 1,
                "encoding": "GSM-7",
                "errors": [{"code": error_code, "title": title, "detail": detail}],
                "completed_at": occurred,
                "tags": [],
            },
        },
        "meta": {"attempt": 1, "delivered_to": None},
    }
