"""Helpers of the end-to-end tests: plain HTTP to a running server, and its database."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import psycopg

from tests.conftest import wait_for


def subscriber_status(url: str, profile: str, number: str = "+13125550147") -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT status FROM subscribers WHERE messaging_profile_id = %s AND phone_number = %s",
            (profile, number),
        ).fetchone()
    return row[0] if row else None


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(raw)
    except json.JSONDecodeError:
        return status, raw


def wait_until_serving(base: str, timeout: float = 30) -> None:
    def up() -> bool:
        try:
            return http("GET", base + "/healthz")[0] == 200
        except OSError:
            return False

    wait_for(up, timeout=timeout)
