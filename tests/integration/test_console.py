"""The console's sessions and forms (spec §14): an admin token opens a signed, HttpOnly,
SameSite=Strict session; every form needs its CSRF token; without SECRET_KEY there is no
console."""

from __future__ import annotations

from dataclasses import replace

import psycopg
import pytest
from flask.testing import FlaskClient

from app.config import Settings
from app.web import create_app
from tests.conftest import apply_received, example, fresh_ids, new_profile
from tests.console import ADMIN, READER, console_client, csrf, figure, log_in


@pytest.fixture
def console(settings: Settings) -> FlaskClient:
    return console_client(settings)


def test_an_admin_token_opens_a_strict_httponly_session(console: FlaskClient) -> None:
    assert console.get("/console/").headers["Location"].startswith("/console/login")
    status, location, _ = log_in(console, ADMIN)
    assert (status, location) == (302, "/console/")
    cookie = console.get_cookie("session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Strict"
    assert not cookie.secure  # plain http here; over https the cookie is Secure
    page = console.get("/console/").get_data(as_text=True)
    assert "<h1>Overview</h1>" in page and "admin-" in page and ADMIN not in page


def test_other_tokens_are_refused_with_a_reason(console: FlaskClient) -> None:
    status, _, page = log_in(console, READER)
    assert status == 401 and "needs a token with the admin role" in page
    status, _, page = log_in(console, "nope")
    assert status == 401 and "not one of API_TOKENS" in page
    assert console.get("/console/").status_code == 302  # still signed out


def test_forms_without_their_csrf_token_are_refused(console: FlaskClient) -> None:
    refused = console.post("/console/login", data={"token": ADMIN})
    assert refused.status_code == 400 and "CSRF token" in refused.get_json()["error"]
    log_in(console, ADMIN)
    assert console.post("/console/logout").status_code == 400
    assert console.get("/console/").status_code == 200  # the forged logout did nothing
    logout = console.post("/console/logout", data={"csrf_token": csrf(console, "/console/")})
    assert logout.headers["Location"] == "/console/login"
    assert console.get("/console/").status_code == 302


def test_the_overview_counts_what_needs_a_person(console: FlaskClient, settings: Settings) -> None:
    log_in(console, ADMIN)
    before = console.get("/console/").get_data(as_text=True)
    apply_received(
        settings.database_url or "", [fresh_ids(example("possible_opt_out"), new_profile())]
    )
    after = console.get("/console/").get_data(as_text=True)
    assert figure(after, "pending_reviews") == figure(before, "pending_reviews") + 1
    assert figure(after, "chain_seq") > 0


def test_without_a_secret_key_there_is_no_console(settings: Settings) -> None:
    app = create_app(replace(settings, secret_key=None), {"TESTING": True})
    assert app.test_client().get("/console/login").status_code == 404


def test_a_held_number_is_confirmed_from_the_review_page_and_audited_with_its_operator(
    console: FlaskClient, settings: Settings
) -> None:
    profile = new_profile()
    held = fresh_ids(example("possible_opt_out"), profile)
    apply_received(settings.database_url or "", [held])
    number = held["data"]["payload"]["from"]["phone_number"]
    log_in(console, ADMIN)
    page = console.get("/console/review").get_data(as_text=True)
    assert number in page and f'value="{profile}"' in page
    token = csrf(console, "/console/review")
    form = {"profile": profile, "phone": number, "decision": "confirm"}
    assert console.post("/console/review", data=form).status_code == 400  # no CSRF token
    done = console.post("/console/review", data=form | {"csrf_token": token})
    assert done.headers["Location"] == "/console/review"
    page = console.get("/console/review").get_data(as_text=True)
    assert f"{number} on {profile}: review_confirmed (review → opted_out)" in page
    with psycopg.connect(settings.database_url or "") as conn:
        (event_id, source) = conn.execute(
            "SELECT event_id, source FROM audit_log WHERE messaging_profile_id = %s"
            " AND action = 'review_confirmed'",
            (profile,),
        ).fetchone()  # type: ignore[misc]
    assert source == "operator" and event_id.startswith("operator:admin-")
    again = console.post("/console/review", data=form | {"csrf_token": token})
    assert again.status_code == 302
    assert "is not held for review (it is opted_out)" in console.get("/console/review").get_data(
        as_text=True
    )
