"""Bad input, fuzzed: the receiver and the /v1 API never answer 5xx, never crash, and an
unsigned body never changes anything."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import psycopg
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from app.devtools.simulate import sign
from tests.conftest import API_TOKEN

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

header_names = st.sampled_from(
    [
        "telnyx-signature-ed25519",
        "telnyx-timestamp",
        "Telnyx-Signature-Ed25519",
        "TELNYX-TIMESTAMP",
        "content-type",
    ]
)
header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=120)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)


def envelope_like() -> st.SearchStrategy[Any]:
    """Bodies shaped like Telnyx's, with any field missing, null or of the wrong type."""
    payload = st.fixed_dictionaries(
        {},
        optional={
            "messaging_profile_id": json_values,
            "text": json_values,
            "autoresponse_type": json_values,
            "from": st.fixed_dictionaries(
                {}, optional={"phone_number": json_values | st.just("+13125550147")}
            ),
            "to": st.lists(
                st.fixed_dictionaries({}, optional={"phone_number": json_values}), max_size=2
            ),
        },
    )
    data = st.fixed_dictionaries(
        {},
        optional={
            "id": json_values | st.uuids().map(str),
            "event_type": st.sampled_from(["message.received", "message.sent", ""]) | json_values,
            "occurred_at": json_values | st.just("2026-11-20T16:00:00+00:00"),
            "payload": payload | json_values,
        },
    )
    return st.fixed_dictionaries({}, optional={"data": data | json_values, "meta": json_values})


def inbox_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM webhook_events").fetchone()
    return int(row[0]) if row else 0


@FUZZ
@given(
    body=st.binary(max_size=2000), headers=st.dictionaries(header_names, header_values, max_size=4)
)
def test_unsigned_or_forged_requests_are_refused_and_change_nothing(
    app: Flask, database_url: str, body: bytes, headers: dict[str, str]
) -> None:
    before = inbox_count(database_url)
    response = app.test_client().post("/webhooks/messaging", data=body, headers=headers)
    assert response.status_code == 401
    assert response.is_json and response.get_json()["error"]
    assert inbox_count(database_url) == before


@FUZZ
@given(document=envelope_like() | json_values)
def test_any_signed_body_gets_200_or_400_never_5xx(
    app: Flask, signing_key: SigningKey, document: Any
) -> None:
    body = json.dumps(document).encode()
    response = app.test_client().post(
        "/webhooks/messaging", data=body, headers=sign(body, signing_key)
    )
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    assert response.is_json


@FUZZ
@given(raw=st.binary(max_size=500))
def test_signed_bytes_that_are_not_json_are_kept_invalid_never_5xx(
    app: Flask, signing_key: SigningKey, raw: bytes
) -> None:
    response = app.test_client().post(
        "/webhooks/messaging", data=raw, headers=sign(raw, signing_key)
    )
    assert response.status_code in (200, 400)


text_params = st.text(max_size=40)


@FUZZ
@given(
    path=st.text(max_size=40).filter(lambda p: p not in (".", "..")),
    params=st.dictionaries(
        st.sampled_from(["messaging_profile_id", "from", "to", "format", "since", "until", "x"]),
        text_params,
        max_size=4,
    ),
)
def test_v1_paths_and_parameters_never_5xx(app: Flask, path: str, params: dict[str, str]) -> None:
    client = app.test_client()
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    path = quote(path, safe="/+")  # as an HTTP client would send it
    for url in (
        f"/v1/subscribers/{path}",
        f"/v1/subscribers/{path}/history",
        "/v1/can-send",
        "/v1/exports/audit",
    ):
        response = client.get(url, query_string=params, headers=auth)
        response.get_data()  # read it all, as a client would (exports stream)
        response.close()
        assert response.status_code in (200, 400, 404), (
            url,
            params,
            response.get_data(as_text=True),
        )
        assert response.is_json or response.status_code == 200


@FUZZ
@given(body=json_values)
def test_can_send_batch_bodies_never_5xx(app: Flask, body: Any) -> None:
    response = app.test_client().post(
        "/v1/can-send", json=body, headers={"Authorization": f"Bearer {API_TOKEN}"}
    )
    assert response.status_code in (200, 400)
