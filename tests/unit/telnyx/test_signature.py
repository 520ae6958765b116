"""Ed25519 webhook verification, as Telnyx signs: {timestamp}|{raw body}."""

from __future__ import annotations

import base64
import time

import pytest
from nacl.signing import SigningKey

from app.config import ConfigError, parse_public_keys
from app.telnyx.signature import SignatureError, verify_webhook

BODY = b'{"data":{"id":"x"}}'


def signed(key: SigningKey, body: bytes = BODY, at: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if at is None else at)
    signature = key.sign(stamp.encode() + b"|" + body).signature
    return {
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
        "telnyx-timestamp": stamp,
    }


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


def test_valid_signature_returns_its_timestamp(key: SigningKey) -> None:
    headers = signed(key, at=1_700_000_000)
    assert verify_webhook(BODY, headers, [key.verify_key], now=1_700_000_010) == 1_700_000_000


def test_header_names_are_case_insensitive(key: SigningKey) -> None:
    headers = {name.upper(): value for name, value in signed(key).items()}
    verify_webhook(BODY, headers, [key.verify_key])


def test_any_of_several_rotated_keys_verifies(key: SigningKey) -> None:
    old = SigningKey.generate()
    verify_webhook(BODY, signed(key), [old.verify_key, key.verify_key])


def test_signature_from_another_key_is_refused(key: SigningKey) -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verify_webhook(BODY, signed(SigningKey.generate()), [key.verify_key])


def test_one_changed_byte_of_body_is_refused(key: SigningKey) -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verify_webhook(BODY + b" ", signed(key), [key.verify_key])


@pytest.mark.parametrize("skew", [-301, 301, -10_000])
def test_timestamp_outside_the_window_is_refused_in_either_direction(
    key: SigningKey, skew: int
) -> None:
    now = 1_700_000_000
    with pytest.raises(SignatureError, match="limit is 300 s"):
        verify_webhook(BODY, signed(key, at=now + skew), [key.verify_key], 300, now=now)


def test_timestamp_at_the_edge_of_the_window_is_accepted(key: SigningKey) -> None:
    now = 1_700_000_000
    verify_webhook(BODY, signed(key, at=now - 300), [key.verify_key], 300, now=now)


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"telnyx-timestamp": "1"}, "missing telnyx-signature-ed25519"),
        ({"telnyx-signature-ed25519": "AAAA"}, "missing telnyx-timestamp"),
        ({"telnyx-signature-ed25519": "AAAA", "telnyx-timestamp": "soon"}, "not a Unix time"),
        ({"telnyx-signature-ed25519": "%%%", "telnyx-timestamp": "NOW"}, "not a Unix time"),
    ],
)
def test_missing_or_malformed_headers_are_named(headers: dict[str, str], problem: str) -> None:
    with pytest.raises(SignatureError, match=problem):
        verify_webhook(BODY, headers, [SigningKey.generate().verify_key])


def test_signature_that_is_not_base64_is_refused(key: SigningKey) -> None:
    headers = signed(key) | {"telnyx-signature-ed25519": "not base64!"}
    with pytest.raises(SignatureError, match="not valid base64"):
        verify_webhook(BODY, headers, [key.verify_key])


def test_signature_of_the_wrong_length_is_refused(key: SigningKey) -> None:
    headers = signed(key) | {"telnyx-signature-ed25519": base64.b64encode(b"x" * 10).decode()}
    with pytest.raises(SignatureError, match="64 bytes, got 10"):
        verify_webhook(BODY, headers, [key.verify_key])


def test_public_keys_parse_comma_separated() -> None:
    keys = [SigningKey.generate().verify_key for _ in range(2)]
    text = ", ".join(base64.b64encode(bytes(k)).decode() for k in keys)
    assert [bytes(k) for k in parse_public_keys(text)] == [bytes(k) for k in keys]


@pytest.mark.parametrize(
    ("value", "problem"),
    [("not-base64!", "key 1 is not valid base64"), ("AAAA", "key 1 decodes to 3 bytes")],
)
def test_malformed_public_key_is_a_config_error(value: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_public_keys(value)
