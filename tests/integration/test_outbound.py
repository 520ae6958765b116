"""Outbound webhooks (spec §11) against a real PostgreSQL and a real HTTP receiver: the outbox
is written with the audit rows, deliveries are signed as Standard Webhooks (verified by the
reference library), retried on the schedule, and settled."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from click.testing import CliRunner
from psycopg_pool import ConnectionPool
from standardwebhooks.webhooks import Webhook

from app.cli import main
from app.config import Settings, parse_api_tokens
from app.consent.intake import ConsentRecord
from app.consent.values import Channel
from app.outbound.sender import Sender
from app.services import intake, outbound
from app.web import create_app
from tests.integration.test_observability import sample
from tests.webhook_receiver import Receiver, webhook_receiver


@pytest.fixture
def url(make_database: Callable[[], str]) -> str:
    return make_database()


@pytest.fixture
def pool(url: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(url, min_size=1, max_size=2, open=True) as opened:
        yield opened


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as threads:
        yield threads


def consent(
    url: str, number: str, action: str = "opt_out", profile: str = "crm", minutes: int = 0
) -> None:
    evidence = b'{"consent_text":"Yes"}' if action == "opt_in" else None
    digest = hashlib.sha256(evidence).hexdigest() if evidence else None
    record = ConsentRecord(
        number,
        profile,
        action,
        datetime(2026, 5, 1, tzinfo=UTC) + timedelta(minutes=minutes),
        Channel.AGENT,
        None,
        evidence,
        digest,
    )
    with psycopg.connect(url) as conn, conn.transaction():
        intake.apply_records(conn, [record])


def add(
    url: str, target: str, types: list[str] | None = None, profile: str | None = None
) -> outbound.NewEndpoint:
    with psycopg.connect(url) as conn, conn.transaction():
        return outbound.add_endpoint(conn, target, types, profile, allow_private=True)


def outbox_rows(url: str) -> list[tuple[int, str, str, int]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT audit_seq, event_type, status, attempts FROM outbox ORDER BY id"
        ).fetchall()


def test_an_opt_out_reaches_the_receiver_signed_as_a_standard_webhook(
    url: str, pool: ConnectionPool, receiver: Receiver, executor: ThreadPoolExecutor
) -> None:
    endpoint = add(url, receiver.url)
    consent(url, "+13125550301")
    assert outbox_rows(url) == [(1, "consent.opted_out", "pending", 0)]

    run = outbound.deliver_due(pool, Sender(allow_private=True), executor, batch=10)
    assert run.outcomes == {"delivered": 1}
    (got,) = receiver.received
    payload = Webhook(endpoint.secret).verify(got.body, got.headers)
    assert payload["type"] == "consent.opted_out"
    assert payload["timestamp"] == payload["data"]["recorded_at"]
    assert payload["data"]["seq"] == 1 and payload["data"]["phone_number"] == "+13125550301"
    assert payload["data"]["channel"] == "agent" and payload["data"]["new_status"] == "opted_out"
    assert got.headers["webhook-id"] == f"msg_{endpoint.id.removeprefix('ep_')}_1"
    assert outbox_rows(url) == [(1, "consent.opted_out", "delivered", 1)]
    # A forged body does not verify.
    with pytest.raises(Exception, match="signature"):
        Webhook(endpoint.secret).verify(got.body.replace(b"301", b"302"), got.headers)


def test_a_failing_receiver_is_retried_on_the_schedule_and_each_id_delivered_once(
    url: str, pool: ConnectionPool, receiver: Receiver, executor: ThreadPoolExecutor
) -> None:
    add(url, receiver.url)
    for index in range(3):
        consent(url, f"+1312555031{index}")
    receiver.answers = [500, 503, 500]  # down for the first round
    sender = Sender(allow_private=True)

    first = outbound.deliver_due(pool, sender, executor, batch=10)
    assert first.outcomes == {"retrying": 3}
    with psycopg.connect(url) as conn:
        waits = conn.execute(
            "SELECT extract(epoch FROM next_attempt_at - clock_timestamp()) FROM outbox"
        ).fetchall()
        (last_error,) = conn.execute("SELECT DISTINCT last_error FROM outbox").fetchone()  # type: ignore[misc]
    assert all(3.5 < float(wait) <= 5 for (wait,) in waits)  # the schedule's first step
    assert last_error.startswith("HTTP 5")
    assert outbound.deliver_due(pool, sender, executor, batch=10).attempted == 0  # not yet due

    time.sleep(5)
    assert outbound.deliver_due(pool, sender, executor, batch=10).outcomes == {"delivered": 3}
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == 6 and len(set(ids)) == 3  # the retry carried the same ids
    delivered = [r.headers["webhook-id"] for r in receiver.delivered()]
    assert sorted(delivered) == sorted(set(ids))  # and each id was delivered once
    assert [row[2:] for row in outbox_rows(url)] == [("delivered", 2)] * 3


def test_410_disables_the_endpoint(
    url: str, pool: ConnectionPool, receiver: Receiver, executor: ThreadPoolExecutor
) -> None:
    endpoint = add(url, receiver.url)
    consent(url, "+13125550320")
    receiver.answers = [410]
    assert outbound.deliver_due(pool, Sender(allow_private=True), executor, batch=10).outcomes == {
        "gone": 1
    }
    with psycopg.connect(url) as conn:
        (listed,) = outbound.list_endpoints(conn)
    assert listed["id"] == endpoint.id and listed["enabled"] is False
    assert listed["disabled_reason"] == "the receiver answered 410 Gone"
    consent(url, "+13125550321")  # a disabled endpoint gets no new webhooks
    assert [row[2] for row in outbox_rows(url)] == ["failed"]


def test_types_profiles_and_superseded_rows_decide_what_is_announced(url: str) -> None:
    add(url, "http://127.0.0.1:9/opt-ins", types=["consent.opted_in"])
    add(url, "http://127.0.0.1:9/other-profile", profile="elsewhere")
    consent(url, "+13125550330", "opt_out", minutes=10)
    consent(url, "+13125550330", "opt_in", minutes=5)  # older than the opt-out: superseded
    consent(url, "+13125550331", "opt_in")
    assert [(seq, kind) for seq, kind, _, _ in outbox_rows(url)] == [(3, "consent.opted_in")]


def test_replay_sends_again_with_the_same_ids(
    url: str, pool: ConnectionPool, receiver: Receiver, executor: ThreadPoolExecutor
) -> None:
    endpoint = add(url, receiver.url)
    consent(url, "+13125550340")
    sender = Sender(allow_private=True)
    outbound.deliver_due(pool, sender, executor, batch=10)
    result = CliRunner().invoke(
        main,
        ["endpoints", "replay", endpoint.id, "--since", "2000-01-01"],
        env={"DATABASE_URL": url},
    )
    assert result.exit_code == 0 and "1 webhooks queued" in result.output
    outbound.deliver_due(pool, sender, executor, batch=10)
    first, again = receiver.received
    assert first.headers["webhook-id"] == again.headers["webhook-id"] and first.body == again.body

    attempts = CliRunner().invoke(
        main, ["endpoints", "attempts", endpoint.id], env={"DATABASE_URL": url}
    )
    assert attempts.output.count("consent.opted_out  attempt 1  HTTP 200") == 2


def test_the_cli_adds_tests_lists_and_removes_an_endpoint(url: str, receiver: Receiver) -> None:
    env = {"DATABASE_URL": url, "ENDPOINTS_ALLOW_PRIVATE": "true"}
    added = CliRunner().invoke(main, ["endpoints", "add", receiver.url], env=env)
    assert added.exit_code == 0, added.output
    endpoint_id = added.output.split()[1]
    secret = added.output.split()[3]
    assert endpoint_id.startswith("ep_") and secret.startswith("whsec_")

    tested = CliRunner().invoke(main, ["endpoints", "test", endpoint_id], env=env)
    assert tested.exit_code == 0 and tested.output.startswith("HTTP 200 in ")
    ping = Webhook(secret).verify(receiver.received[0].body, receiver.received[0].headers)
    assert ping["type"] == "ping" and ping["data"] == {"endpoint_id": endpoint_id}

    listed = CliRunner().invoke(main, ["endpoints", "list"], env=env)
    assert f"{endpoint_id}  {receiver.url}  types=all  profile=all  enabled" in listed.output
    removed = CliRunner().invoke(main, ["endpoints", "remove", endpoint_id], env=env)
    assert removed.exit_code == 0
    gone = CliRunner().invoke(main, ["endpoints", "remove", endpoint_id], env=env)
    assert gone.exit_code == 1 and f"no endpoint {endpoint_id}" in gone.output


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("http://example.com/hook", "must use https"),
        ("https://127.0.0.1/hook", "127.0.0.1, a loopback address"),
        ("https://localhost/hook", "a loopback address"),
        ("https://10.1.2.3/hook", "a private address"),
        ("https://169.254.169.254/latest/meta-data", "a link-local (cloud metadata) address"),
        ("https://[::1]/hook", "a loopback address"),
        ("https://user:pw@example.com/hook", "must not carry a user name or password"),
        ("ftp://example.com/hook", "is not an http(s) URL"),
    ],
)
def test_unsafe_urls_are_refused_unless_private_addresses_are_allowed(
    url: str, target: str, problem: str
) -> None:
    result = CliRunner().invoke(main, ["endpoints", "add", target], env={"DATABASE_URL": url})
    assert result.exit_code == 1 and problem in result.output


def test_an_address_is_checked_again_at_delivery(
    url: str, pool: ConnectionPool, receiver: Receiver, executor: ThreadPoolExecutor
) -> None:
    add(url, receiver.url)  # allowed when it was added
    consent(url, "+13125550350")
    run = outbound.deliver_due(pool, Sender(allow_private=False), executor, batch=10)
    assert run.outcomes == {"retrying": 1} and receiver.received == []
    with psycopg.connect(url) as conn:
        (error,) = conn.execute("SELECT last_error FROM outbox").fetchone()  # type: ignore[misc]
    assert error.startswith("unsafe URL:") and "must use https" in error


def test_the_api_manages_endpoints_for_admins(
    url: str, settings: Settings, receiver: Receiver, pool: ConnectionPool
) -> None:
    tokens = parse_api_tokens("admin:boss,write:clerk")
    app = create_app(
        replace(settings, database_url=url, api_tokens=tokens, endpoints_allow_private=True)
    )
    client = app.test_client()
    admin = {"Authorization": "Bearer boss"}
    refused = client.post(
        "/v1/endpoints", json={"url": receiver.url}, headers={"Authorization": "Bearer clerk"}
    )
    assert refused.status_code == 403
    assert refused.get_json() == {"error": "this call needs a token with the admin role"}

    added = client.post(
        "/v1/endpoints", json={"url": receiver.url, "types": ["consent.opted_out"]}, headers=admin
    )
    assert added.status_code == 201
    endpoint_id, secret = added.get_json()["id"], added.get_json()["secret"]
    (listed,) = client.get("/v1/endpoints", headers=admin).get_json()["endpoints"]
    assert listed["id"] == endpoint_id and listed["event_types"] == ["consent.opted_out"]
    assert "secret" not in listed

    tested = client.post(f"/v1/endpoints/{endpoint_id}/test", headers=admin).get_json()
    assert tested["status"] == 200 and tested["body"] == "ok" and tested["error"] is None
    assert Webhook(secret).verify(receiver.received[0].body, receiver.received[0].headers)

    consent(url, "+13125550360")
    with ThreadPoolExecutor(2) as threads:
        outbound.deliver_due(pool, Sender(allow_private=True), threads, batch=10)
    (attempt,) = client.get(f"/v1/endpoints/{endpoint_id}/attempts", headers=admin).get_json()[
        "attempts"
    ]
    assert attempt["status_code"] == 200 and attempt["status"] == "delivered"
    replayed = client.post(
        f"/v1/endpoints/{endpoint_id}/replay", json={"since": "2000-01-01T00:00:00Z"}, headers=admin
    )
    assert replayed.get_json() == {"queued": 1}
    assert client.delete(f"/v1/endpoints/{endpoint_id}", headers=admin).status_code == 204
    assert client.get("/v1/endpoints", headers=admin).get_json() == {"endpoints": []}
    unsafe = client.post("/v1/endpoints", json={"url": "http://example.invalid/"}, headers=admin)
    assert unsafe.status_code == 400 and "does not resolve" in unsafe.get_json()["error"]


def test_metrics_count_deliveries_and_show_the_backlog(
    url: str,
    settings: Settings,
    pool: ConnectionPool,
    receiver: Receiver,
    executor: ThreadPoolExecutor,
) -> None:
    add(url, receiver.url)
    for index in range(3):
        consent(url, f"+1312555037{index}")
    client = create_app(replace(settings, database_url=url), {"TESTING": True}).test_client()
    before = client.get("/metrics").get_data(as_text=True)
    assert sample(before, "optout_sync_outbox_pending") == 3
    assert sample(before, "optout_sync_outbox_oldest_seconds") > 0

    receiver.answers = [500]
    outbound.deliver_due(pool, Sender(allow_private=True), executor, batch=10)
    after = client.get("/metrics").get_data(as_text=True)
    assert sample(after, 'optout_sync_deliveries_total{outcome="delivered"}') == 2
    assert sample(after, 'optout_sync_deliveries_total{outcome="retrying"}') == 1
    assert sample(after, "optout_sync_outbox_pending") == 1


def test_five_days_of_failures_disable_an_endpoint_and_a_success_clears_the_run(
    url: str, pool: ConnectionPool, receiver: Receiver, executor: ThreadPoolExecutor
) -> None:
    endpoint = add(url, receiver.url)
    sender = Sender(allow_private=True)

    def failing_since(days: float) -> None:  # a run of failures that began that long ago
        with psycopg.connect(url) as conn:
            conn.execute(
                "UPDATE endpoints SET failing_since = clock_timestamp() - %s",
                (timedelta(days=days),),
            )
            conn.commit()

    def state() -> tuple[bool, bool, str | None]:
        with psycopg.connect(url) as conn:
            (row,) = outbound.list_endpoints(conn)
        return row["enabled"], row["failing_since"] is not None, row["disabled_reason"]

    consent(url, "+13125550380")
    receiver.answers = [500]
    outbound.deliver_due(pool, sender, executor, batch=10)
    assert state() == (True, True, None)  # a run of failures has begun

    consent(url, "+13125550381")
    outbound.deliver_due(pool, sender, executor, batch=10)  # answered 200
    assert state() == (True, False, None)  # a success ends the run

    failing_since(4.9)
    consent(url, "+13125550382")
    receiver.answers = [500]
    outbound.deliver_due(pool, sender, executor, batch=10)
    assert state() == (True, True, None)  # under five days: still enabled

    failing_since(5.1)
    consent(url, "+13125550383")
    receiver.answers = [500] * 3
    with psycopg.connect(url) as conn:  # the two earlier failures are due again too
        conn.execute("UPDATE outbox SET next_attempt_at = clock_timestamp()")
        conn.commit()
    outbound.deliver_due(pool, sender, executor, batch=10)
    assert state() == (False, True, "every delivery failed for 5 days")
    assert len(receiver.received) == 6 and endpoint.id
