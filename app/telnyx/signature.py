"""Telnyx webhook signature verification: bytes and headers in, nothing or one exception out.

Telnyx signs ``{telnyx-timestamp}|{raw body}`` with the account's Ed25519 key and sends the
base64 signature in ``telnyx-signature-ed25519``.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Sequence
from typing import Any, Protocol

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"


class HeaderLookup(Protocol):
    def get(self, key: str, /) -> Any: ...
    def items(self) -> Any: ...


class SignatureError(Exception):
    """The request is not provably from Telnyx; the message says why."""


def _header(headers: HeaderLookup, name: str) -> str | None:
    # Flask's headers are case-insensitive already; plain dicts (tests, other servers) are not.
    value = headers.get(name)
    if value is None:
        for key, candidate in headers.items():
            if key.lower() == name:
                return candidate
    return value


def verify_webhook(
    body: bytes,
    headers: HeaderLookup,
    keys: Sequence[VerifyKey],
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> int:
    """Verify a Telnyx webhook; return its timestamp, or raise SignatureError."""
    if not keys:
        raise SignatureError("no public key configured to verify webhooks")
    signature_b64 = _header(headers, SIGNATURE_HEADER)
    timestamp_text = _header(headers, TIMESTAMP_HEADER)
    if not signature_b64:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    if not timestamp_text:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} header")
    timestamp_text = timestamp_text.strip()
    if not timestamp_text.isascii() or not timestamp_text.isdigit():
        raise SignatureError(f"{TIMESTAMP_HEADER} is not a Unix time in seconds")
    timestamp = int(timestamp_text)
    skew = abs((time.time() if now is None else now) - timestamp)
    if skew > tolerance_seconds:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} is {int(skew)} s away from now; the limit is {tolerance_seconds} s"
        )
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{SIGNATURE_HEADER} is not valid base64") from None
    if len(signature) != 64:
        raise SignatureError(f"{SIGNATURE_HEADER} must decode to 64 bytes, got {len(signature)}")
    message = timestamp_text.encode("ascii") + b"|" + body
    for key in keys:
        try:
            key.verify(message, signature)
            return timestamp
        except BadSignatureError:
            continue
    raise SignatureError("signature does not match any configured public key")
