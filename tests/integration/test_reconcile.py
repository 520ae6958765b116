"""`optout-sync reconcile` against a local fake of Telnyx's GET /messaging_optouts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from click.testing import CliRunner, Result

from app.cli import main
from app.devtools.simulate import message_received
from tests.conftest import apply_received
from tests.fake_telnyx import API_KEY, FakeTelnyx, RunningFake

PROFILE = "reconcile-profile"
OTHER = "another-profile"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def optout(number: str, minutes: int, profile: str | None = PROFILE) -> dict[str, object]:
    created = (T0 + timedelta(minutes=minutes)).isoformat(" ")  # Telnyx's own format
    return {
        "from": "+17735550188",
        "to": number,
        "messaging_profile_id": profile,
        "keyword": "STOP",
        "created_at": created,
    }


@pytest.fixture
def telnyx() -> Iterator[RunningFake]:
    with RunningFake(FakeTelnyx()) as served:
        yield served


@pytest.fixture
def db(make_database: Callable[[], str]) -> str:
    return make_database()


def run(telnyx: RunningFake, db: str, *args: str, key: str = API_KEY) -> Result:
    env = {"TELNYX_API_KEY": key, "TELNYX_API_BASE_URL": telnyx.url, "DATABASE_URL": db}
    return CliRunner().invoke(main, ["reconcile", *args], env=env)


def statuses(db: str, profile: str = PROFILE) -> dict[str, str]:
    with psycopg.connect(db) as conn:
        return dict(
            conn.execute(
                "SELECT phone_number, status FROM subscribers WHERE messaging_profile_id = %s",
                (profile,),
            ).fetchall()
        )


def test_records_every_missing_optout_across_pages_audited_as_reconcile(
    telnyx: RunningFake, db: str
) -> None:
    numbers = [f"+1312555{i:04d}" for i in range(130)]  # two pages of 100
    telnyx.fake.optouts = [optout(n, i) for i, n in enumerate(numbers)]
    result = run(telnyx, db)
    assert result.exit_code == 0, result.output
    assert "Telnyx holds 130 opt-out(s): 130 recorded" in result.output
    assert set(statuses(db).values()) == {"opted_out"} and len(statuses(db)) == 130
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT DISTINCT action, source, telnyx_block, our_number FROM audit_log"
        ).fetchall()
    assert rows == [("opt_out", "reconcile", True, "+17735550188")]
    assert [p for m, p in telnyx.fake.requests if m == "GET"] == ["/v2/messaging_optouts"] * 2


def test_rerun_is_idempotent_and_known_optouts_are_not_recorded_again(
    telnyx: RunningFake, db: str
) -> None:
    # One number already opted out here through its webhook.
    payload = message_received(
        text="STOP",
        from_number="+13125550001",
        autoresponse_type="STOP",
        to_number="+17735550188",
        profile_id=PROFILE,
    )
    apply_received(db, [payload])
    telnyx.fake.optouts = [optout("+13125550001", 0), optout("+13125550002", 1)]
    first = run(telnyx, db)
    assert "1 recorded, 1 already opted out here, 0 already reconciled" in first.output
    second = run(telnyx, db)
    assert "0 recorded, 1 already opted out here, 1 already reconciled" in second.output
    with psycopg.connect(db) as conn:
        (count,) = conn.execute("SELECT count(*) FROM audit_log").fetchone()  # type: ignore[misc]
    assert count == 2  # the webhook's STOP and one reconciled opt-out, never more


def test_profile_filter_and_unusable_items(telnyx: RunningFake, db: str) -> None:
    telnyx.fake.optouts = [
        optout("+13125550003", 0),
        optout("+13125550004", 1, profile=OTHER),
        optout("+4477****", 2),  # redaction_enabled answers
        optout("+13125550005", 3, profile=None),
    ]
    result = run(telnyx, db, "--profile", PROFILE)
    assert result.exit_code == 0, result.output
    assert statuses(db) == {"+13125550003": "opted_out"}
    assert statuses(db, OTHER) == {}
    assert "skipped: 1 with a redacted or invalid number" in result.output
    everything = run(telnyx, db)
    assert "1 without a messaging profile" in everything.output
    assert statuses(db, OTHER) == {"+13125550004": "opted_out"}


def test_since_asks_telnyx_for_newer_optouts_only(telnyx: RunningFake, db: str) -> None:
    telnyx.fake.optouts = [optout("+13125550006", 0), optout("+13125550007", 600)]
    run(telnyx, db, "--since", (T0 + timedelta(minutes=300)).isoformat())
    assert statuses(db) == {"+13125550007": "opted_out"}


def test_a_late_optout_older_than_a_local_start_is_audited_as_superseded(
    telnyx: RunningFake, db: str
) -> None:
    start = message_received(
        text="START",
        from_number="+13125550008",
        autoresponse_type="START",
        to_number="+17735550188",
        profile_id=PROFILE,
        occurred_at=T0 + timedelta(hours=1),
    )
    apply_received(db, [start])
    telnyx.fake.optouts = [optout("+13125550008", 0)]
    run(telnyx, db)
    assert statuses(db) == {"+13125550008": "opted_in"}
    with psycopg.connect(db) as conn:
        (superseded,) = conn.execute(
            "SELECT superseded FROM audit_log WHERE source = 'reconcile'"
        ).fetchone()  # type: ignore[misc]
    assert superseded is True


def test_wrong_key_is_named_and_nothing_is_recorded(telnyx: RunningFake, db: str) -> None:
    telnyx.fake.optouts = [optout("+13125550009", 0)]
    result = run(telnyx, db, key="wrong")
    assert result.exit_code == 1
    assert (
        "could not read Telnyx's opt-out list: Telnyx API answered 401 (check TELNYX_API_KEY)"
        in result.output
    )
    assert statuses(db) == {}


@pytest.mark.parametrize(("status", "headers"), [(429, {"Retry-After": "1"}), (502, {})])
def test_rate_limits_and_server_errors_are_retried(
    telnyx: RunningFake, db: str, status: int, headers: dict[str, str]
) -> None:
    telnyx.fake.optouts = [optout("+13125550010", 0)]
    telnyx.fake.fail_next(status, headers)
    result = run(telnyx, db)
    assert result.exit_code == 0 and "1 recorded" in result.output
    assert len([m for m, _ in telnyx.fake.requests if m == "GET"]) == 2


def test_persistent_server_errors_give_up_clearly(telnyx: RunningFake, db: str) -> None:
    for _ in range(4):
        telnyx.fake.fail_next(503)
    result = run(telnyx, db)
    assert result.exit_code == 1 and "answered 503" in result.output
