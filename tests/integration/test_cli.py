"""The optout-sync command line against a real database."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
from click.testing import CliRunner

from app.cli import main
from app.cli.dev import dev_api_token, new_api_token
from app.consent.keyword_configs import KeywordEngine
from app.devtools.simulate import message_received
from app.store import inbox, migrations
from tests.conftest import record_pending


def test_db_upgrade_is_idempotent_and_safe_to_run_concurrently(
    make_database: Callable[[], str],
) -> None:
    url = make_database()  # already migrated once
    results: list[list[str]] = []

    def upgrade() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            results.append(migrations.upgrade(conn))

    threads = [threading.Thread(target=upgrade) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [[], [], []]
    output = CliRunner().invoke(main, ["db", "upgrade"], env={"DATABASE_URL": url}).output
    assert "schema is up to date" in output


def test_db_upgrade_applies_every_migration_to_an_empty_database(servers: dict[str, str]) -> None:
    with psycopg.connect(servers["database"], autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS optout_sync_cli_empty WITH (FORCE)")
        admin.execute("CREATE DATABASE optout_sync_cli_empty")
    url = servers["database"].rsplit("/", 1)[0] + "/optout_sync_cli_empty"
    try:
        result = CliRunner().invoke(main, ["db", "upgrade"], env={"DATABASE_URL": url})
        assert result.exit_code == 0, result.output
        assert "applied 0001_initial" in result.output
    finally:
        with psycopg.connect(servers["database"], autocommit=True) as admin:
            admin.execute("DROP DATABASE optout_sync_cli_empty WITH (FORCE)")


def test_classify_prints_the_verdict_as_json() -> None:
    result = CliRunner().invoke(main, ["classify", "  Opt-Out!! "])
    assert json.loads(result.output) == {
        "op": "stop",
        "source": "keyword",
        "keyword": "OPT OUT",
        "normalized": "opt-out",
        "rule": "exact",
    }
    ordinary = json.loads(CliRunner().invoke(main, ["classify", "see you at 5"]).output)
    assert ordinary["op"] is None


def test_simulated_autoresponse_type_is_set_only_for_telnyx_keywords() -> None:
    telnyx = KeywordEngine().telnyx_autoresponse_type
    assert telnyx("stop", "p", "US") == "STOP"
    assert telnyx("Unstop", "p", "US") == "START"
    assert telnyx("help", "p", "US") == "HELP"
    assert telnyx("REVOKE", "p", "US") is None
    assert telnyx(" stop all ", "p", "US") == "STOP"
    assert telnyx("ЅТОР", "p", "US") is None  # Telnyx matches exactly; look-alikes are ours
    assert telnyx("𝐒𝐓𝐎𝐏", "p", "US") is None
    assert telnyx("please stop texting me", "p", "US") is None


def test_events_list_and_replay_failed(make_database: Callable[[], str]) -> None:
    url = make_database()
    payload = message_received(
        text="STOP", from_number="+13125550147", to_number="+17735550188", profile_id="cli"
    )
    event_id = payload["data"]["id"]
    with psycopg.connect(url) as conn:
        record_pending(conn, payload, event_id=event_id)
        (pk,) = conn.execute("SELECT pk FROM webhook_events").fetchone()  # type: ignore[misc]
        inbox.record_failure(conn, pk, "database exploded", max_attempts=1)
        conn.commit()
    runner, env = CliRunner(), {"DATABASE_URL": url, "REDIS_URL": "", "CELERY_BROKER_URL": ""}
    listed = runner.invoke(main, ["events", "list", "--status", "failed"], env=env)
    assert event_id in listed.output and "database exploded" in listed.output
    refused = runner.invoke(main, ["events", "replay", "no-such-event"], env=env)
    assert refused.exit_code == 1 and "no event with id no-such-event" in refused.output
    replayed = runner.invoke(main, ["events", "replay", "--failed"], env=env)
    assert replayed.exit_code == 0 and "queued 1 event(s) again" in replayed.output
    pending = runner.invoke(main, ["events", "list", "--status", "pending", "--json"], env=env)
    assert json.loads(pending.output.splitlines()[0])["event_id"] == event_id


def test_dev_api_token_never_begins_with_a_dash_and_an_old_one_that_did_is_replaced(
    tmp_path: Path,
) -> None:
    # URL-safe base64 began with `-` once in 64 tokens; a shell command took it for an option.
    assert [
        token for token in (new_api_token() for _ in range(2000)) if token.startswith("-")
    ] == []
    (tmp_path / "dev-api-token").write_text("-mdyTctwxOLD\n")
    token = dev_api_token(tmp_path)
    assert not token.startswith("-")
    assert dev_api_token(tmp_path) == token  # kept from then on
