"""Signing in to the console from a Flask test client, for the console's tests."""

from __future__ import annotations

import re
from dataclasses import replace

from flask.testing import FlaskClient

from app.config import Settings, parse_api_tokens
from app.web import create_app

ADMIN, READER = "console-admin-secret", "console-reader-secret"


def console_client(settings: Settings) -> FlaskClient:
    tokens = parse_api_tokens(f"admin:{ADMIN},read:{READER}")
    app = create_app(replace(settings, api_tokens=tokens, secret_key="s" * 64), {"TESTING": True})
    return app.test_client()


def csrf(client: FlaskClient, path: str = "/console/login") -> str:
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found[1]


def log_in(client: FlaskClient, token: str = ADMIN) -> tuple[int, str, str]:
    answer = client.post("/console/login", data={"token": token, "csrf_token": csrf(client)})
    return answer.status_code, answer.headers.get("Location", ""), answer.get_data(as_text=True)


def figure(page: str, name: str) -> int:
    """A number the overview shows under data-figure=name."""
    found = re.search(rf'data-figure="{name}">([\d,]+)<', page)
    assert found, name
    return int(found[1].replace(",", ""))
