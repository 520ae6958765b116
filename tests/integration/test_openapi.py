"""The API description at /v1/openapi.json matches what the API really answers: every
response below is checked against it by openapi-core, errors included."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest
from flask.testing import FlaskClient
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_core.exceptions import OpenAPIError
from werkzeug.test import EnvironBuilder, TestResponse
from werkzeug.wrappers import Request

from app.config import Settings, parse_api_tokens
from app.devtools.simulate import message_received
from app.web import create_app
from app.web.api import OPENAPI_DOCUMENT
from tests.conftest import apply_received, example, fresh_ids

PROFILE = "openapi-profile"
READ = {"Authorization": "Bearer reader"}
WRITE = {"Authorization": "Bearer writer"}
ADMIN = {"Authorization": "Bearer admin"}


@pytest.fixture(scope="module")
def client(make_database: Callable[[], str], settings: Settings) -> FlaskClient:
    url = make_database()
    apply_received(
        url,
        [
            fresh_ids(example("stop_toll_free"), PROFILE),
            message_received(
                text="HELP",
                from_number="+13125550149",
                to_number="+17735550188",
                profile_id=PROFILE,
                autoresponse_type="HELP",
            ),
        ],
    )
    tokens = parse_api_tokens("read:reader,write:writer,admin:admin")
    app = create_app(
        replace(settings, database_url=url, api_tokens=tokens, endpoints_allow_private=True)
    )
    return app.test_client()


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    return OpenAPI.from_dict(json.loads(OPENAPI_DOCUMENT.read_text()))


def described(openapi: OpenAPI, request: Request, response: TestResponse) -> None:
    """The answer is as the description says, and so is the request unless it was meant to
    be refused for its token (raises if not)."""
    sent = WerkzeugOpenAPIRequest(request)
    if response.status_code != 401:
        openapi.validate_request(sent)
    openapi.validate_response(sent, WerkzeugOpenAPIResponse(response))


CALLS = [
    ("GET", "/v1/subscribers/%2B13125550147", {"messaging_profile_id": PROFILE}, None, READ, 200),
    ("GET", "/v1/subscribers/%2B13125550147", {}, None, READ, 200),
    ("GET", "/v1/subscribers/%2B13125550100", {"messaging_profile_id": PROFILE}, None, READ, 404),
    ("GET", "/v1/subscribers/12345", {"messaging_profile_id": PROFILE}, None, READ, 400),
    (
        "GET",
        "/v1/subscribers/%2B13125550147/history",
        {"messaging_profile_id": PROFILE},
        None,
        READ,
        200,
    ),
    (
        "GET",
        "/v1/can-send",
        {"messaging_profile_id": PROFILE, "from": "+18885550123", "to": "+13125550147"},
        None,
        READ,
        200,
    ),
    (
        "GET",
        "/v1/can-send",
        {"messaging_profile_id": PROFILE, "from": "+17735550188", "to": "+13125550149"},
        None,
        READ,
        200,
    ),
    (
        "POST",
        "/v1/can-send",
        {},
        {"messaging_profile_id": PROFILE, "from": "12345", "to": ["+13125550147", "+13125550149"]},
        READ,
        200,
    ),
    (
        "POST",
        "/v1/can-send",
        {},
        {"messaging_profile_id": PROFILE, "from": "12345", "to": ["nope"]},
        READ,
        400,
    ),
    (
        "GET",
        "/v1/can-send",
        {"messaging_profile_id": PROFILE, "from": "+17735550188", "to": "+13125550149"},
        None,
        {},
        401,
    ),
    ("GET", "/v1/exports/audit", {"format": "jsonl"}, None, READ, 403),
    ("GET", "/v1/exports/audit", {"format": "jsonl"}, None, ADMIN, 200),
    ("GET", "/v1/exports/audit", {"format": "csv"}, None, ADMIN, 200),
    ("GET", "/v1/openapi.json", {}, None, READ, 200),
    (
        "POST",
        "/v1/consent",
        {},
        {
            "events": [
                {
                    "phone_number": "+13125550150",
                    "messaging_profile_id": PROFILE,
                    "action": "opt_in",
                    "channel": "web_form",
                    "evidence": {"consent_text": "Yes, text me."},
                }
            ]
        },
        WRITE,
        200,
    ),
    (
        "POST",
        "/v1/consent",
        {},
        {
            "events": [
                {
                    "phone_number": "+13125550150",
                    "messaging_profile_id": PROFILE,
                    "action": "opt_in",
                }
            ]
        },
        WRITE,
        400,
    ),
    (
        "POST",
        "/v1/consent",
        {},
        {
            "events": [
                {
                    "phone_number": "+13125550150",
                    "messaging_profile_id": PROFILE,
                    "action": "opt_out",
                }
            ]
        },
        READ,
        403,
    ),
    ("GET", "/v1/consent/evidence/999999", {}, None, ADMIN, 404),
    ("GET", "/v1/changes", {"after": "0", "limit": "2"}, None, READ, 200),
    ("GET", "/v1/changes", {"after": "999999", "wait": "0.1"}, None, READ, 200),
    (
        "POST",
        "/v1/send-errors",
        {},
        {
            "messaging_profile_id": PROFILE,
            "from": "+17735550188",
            "to": "+13125550177",
            "code": "40300",
            "title": "Blocked due to STOP message",
        },
        WRITE,
        200,
    ),
    (
        "POST",
        "/v1/send-errors",
        {},
        {"messaging_profile_id": PROFILE, "from": "+17735550188", "to": "nope", "code": "40300"},
        WRITE,
        400,
    ),
    ("POST", "/v1/endpoints", {}, {"url": "http://127.0.0.1:9/hook"}, ADMIN, 201),
    ("POST", "/v1/endpoints", {}, {"url": "ftp://127.0.0.1/hook"}, ADMIN, 400),
    ("POST", "/v1/endpoints", {}, {"url": "http://127.0.0.1:9/hook"}, WRITE, 403),
    ("GET", "/v1/endpoints", {}, None, ADMIN, 200),
    ("DELETE", "/v1/endpoints/ep_missing", {}, None, ADMIN, 404),
    ("POST", "/v1/endpoints/ep_missing/test", {}, None, ADMIN, 404),
    ("GET", "/v1/endpoints/ep_missing/attempts", {}, None, ADMIN, 404),
    ("POST", "/v1/endpoints/ep_missing/replay", {}, {"since": "2026-01-01T00:00:00Z"}, ADMIN, 404),
]


@pytest.mark.parametrize(("method", "path", "query", "body", "headers", "status"), CALLS)
def test_every_answer_is_as_the_description_says(
    client: FlaskClient,
    openapi: OpenAPI,
    method: str,
    path: str,
    query: dict[str, str],
    body: object,
    headers: dict[str, str],
    status: int,
) -> None:
    call = {"method": method, "query_string": query, "json": body, "headers": headers}
    response = client.open(path, **call)
    assert response.status_code == status, response.get_data(as_text=True)
    response.get_data()  # a streamed export, read to its end
    # The app has read the request's body: the description checks a copy of the request.
    described(openapi, EnvironBuilder(path, **call).get_request(), response)


def test_the_description_is_served_as_shipped(client: FlaskClient) -> None:
    served = client.get("/v1/openapi.json", headers=READ).get_json()
    assert served == json.loads(OPENAPI_DOCUMENT.read_text())
    assert served["openapi"].startswith("3.1")


def test_an_answer_unlike_the_description_is_caught(client: FlaskClient) -> None:
    # The check above can fail: a description that wants one more field refuses the answer.
    document = json.loads(OPENAPI_DOCUMENT.read_text())
    document["components"]["schemas"]["CanSend"]["required"].append("unknown_field")
    stricter = OpenAPI.from_dict(document)
    call = {
        "query_string": {"messaging_profile_id": PROFILE, "from": "12345", "to": "+13125550149"},
        "headers": READ,
    }
    response = client.get("/v1/can-send", **call)
    with pytest.raises(OpenAPIError):
        described(stricter, EnvironBuilder("/v1/can-send", **call).get_request(), response)
