"""`autoresp pull|diff|push` against a local fake of Telnyx's autoresp_configs API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from app.cli import main
from app.telnyx.api import TelnyxApiError, TelnyxClient
from tests.fake_telnyx import API_KEY, FakeTelnyx, RunningFake
from tests.keyword_configs import KEYWORDS

PROFILE = "40017f0f-92d8-4318-9f8a-e0e2a92c3f60"
GOOD = "You are unsubscribed and will get no more messages."


@pytest.fixture
def telnyx() -> Iterator[RunningFake]:
    with RunningFake(FakeTelnyx()) as served:
        yield served


def cli(telnyx: RunningFake, *args: str, key: str = API_KEY) -> Result:
    env = {"TELNYX_API_KEY": key, "TELNYX_API_BASE_URL": telnyx.url}
    return CliRunner().invoke(main, ["autoresp", *args], env=env)


def seed(telnyx: RunningFake, *configs: dict[str, Any]) -> list[str]:
    client = TelnyxClient(API_KEY, telnyx.url)
    return [client.create_autoresp_config(PROFILE, c)["id"] for c in configs]


def write(tmp_path: Path, document: Any, name: str = "keywords.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document, ensure_ascii=False))
    return path


def remote(telnyx: RunningFake) -> list[tuple[str, str, list[str], str]]:
    return sorted(
        (c["op"], c["country_code"], c["keywords"], c["resp_text"])
        for c in telnyx.fake.autoresp.get(PROFILE, {}).values()
    )


def test_pull_writes_every_page_as_a_valid_keywords_file(
    telnyx: RunningFake, tmp_path: Path
) -> None:
    seed(
        telnyx,
        *(
            {"op": f"menu{i}", "keywords": [f"MENU{i}"], "resp_text": "Menu", "country_code": "*"}
            for i in range(105)
        ),
    )
    out = tmp_path / "pulled.json"
    result = cli(telnyx, "pull", "--profile", PROFILE, "--output", str(out))
    assert result.exit_code == 0, result.output
    pulled = json.loads(out.read_text())
    assert len(pulled) == 105  # two pages of 100
    assert all(entry["messaging_profile_id"] == PROFILE and entry["id"] for entry in pulled)
    assert CliRunner().invoke(main, ["autoresp", "validate", str(out)]).exit_code == 0
    pages = [path for method, path in telnyx.fake.requests if method == "GET"]
    assert len(pages) == 2


def test_diff_lists_creates_updates_and_deletes_and_exits_1(
    telnyx: RunningFake, tmp_path: Path
) -> None:
    seed(
        telnyx,
        {"op": "stop", "keywords": ["PARAR"], "resp_text": GOOD, "country_code": "MX"},
        {"op": "promo", "keywords": ["DEALS"], "resp_text": "Deals!", "country_code": "*"},
    )
    file = write(
        tmp_path,
        [
            {"op": "stop", "keywords": ["PARAR", "BAJA"], "resp_text": GOOD, "country_code": "MX"},
            {
                "op": "start",
                "keywords": ["INICIO"],
                "country_code": "MX",
                "resp_text": "Bienvenido de nuevo a nuestras alertas.",
            },
        ],
    )
    result = cli(telnyx, "diff", "--profile", PROFILE, str(file))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert [line[0] for line in lines] == ["~", "+", "-"]
    assert "keywords ['PARAR'] -> ['PARAR', 'BAJA']" in lines[0]
    assert "op start country MX" in lines[1] and "op promo" in lines[2]


def test_push_makes_telnyx_match_the_file_and_then_diff_is_clean(
    telnyx: RunningFake, tmp_path: Path
) -> None:
    seed(telnyx, {"op": "promo", "keywords": ["DEALS"], "resp_text": "Deals!", "country_code": "*"})
    file = write(tmp_path, KEYWORDS)
    pushed = cli(telnyx, "push", "--profile", PROFILE, str(file))
    assert pushed.exit_code == 0, pushed.output
    # The VIP profile's own configuration is not this profile's: 6 of the 7 go up.
    assert len(remote(telnyx)) == 6
    assert (
        "stop",
        "MX",
        ["PARAR", "BAJA", "ALTO", "CANCELAR"],
        KEYWORDS[0]["resp_text"],
    ) in remote(telnyx)
    clean = cli(telnyx, "diff", "--profile", PROFILE, str(file))
    assert clean.exit_code == 0 and "in step" in clean.output
    again = cli(telnyx, "push", "--profile", PROFILE, str(file))
    assert "0 change(s) pushed" in again.output


def test_pull_then_push_changes_nothing(telnyx: RunningFake, tmp_path: Path) -> None:
    seed(telnyx, {"op": "stop", "keywords": ["PARAR"], "resp_text": GOOD, "country_code": "MX"})
    out = tmp_path / "pulled.json"
    cli(telnyx, "pull", "--profile", PROFILE, "--output", str(out))
    before = len(telnyx.fake.requests)
    assert "0 change(s) pushed" in cli(telnyx, "push", "--profile", PROFILE, str(out)).output
    assert [m for m, _ in telnyx.fake.requests[before:]] == ["GET"]


def test_push_refuses_a_file_outside_telnyx_limits_and_sends_nothing(
    telnyx: RunningFake, tmp_path: Path
) -> None:
    file = write(
        tmp_path, [{"op": "promo", "keywords": ["STOP"], "resp_text": "x", "country_code": "*"}]
    )
    result = cli(telnyx, "push", "--profile", PROFILE, str(file))
    assert result.exit_code == 1
    assert "reserved for op stop" in result.output and "nothing was sent" in result.output
    assert telnyx.fake.requests == []


def test_a_wrong_api_key_is_named_clearly(telnyx: RunningFake) -> None:
    result = cli(telnyx, "pull", "--profile", PROFILE, key="wrong")
    assert result.exit_code == 1
    assert (
        "Telnyx API answered 401 (check TELNYX_API_KEY): 10009 — Authentication failed"
        in result.output
    )


def test_missing_api_key_is_named() -> None:
    result = CliRunner().invoke(
        main, ["autoresp", "pull", "--profile", PROFILE], env={"TELNYX_API_KEY": ""}
    )
    assert result.exit_code == 1 and "TELNYX_API_KEY is not set" in result.output


@pytest.mark.parametrize(("status", "headers"), [(429, {"Retry-After": "1"}), (503, {}), (500, {})])
def test_rate_limits_and_server_errors_are_retried(
    telnyx: RunningFake, status: int, headers: dict[str, str]
) -> None:
    seed(telnyx, {"op": "stop", "keywords": ["PARAR"], "resp_text": GOOD, "country_code": "MX"})
    telnyx.fake.fail_next(status, headers)
    slept: list[float] = []
    client = TelnyxClient(API_KEY, telnyx.url, sleep=slept.append)
    assert len(client.list_autoresp_configs(PROFILE)) == 1
    assert slept == ([1.0] if status == 429 else [0.5])


def test_persistent_server_errors_give_up_with_the_status(telnyx: RunningFake) -> None:
    for _ in range(4):
        telnyx.fake.fail_next(503)
    client = TelnyxClient(API_KEY, telnyx.url, sleep=lambda _: None)
    with pytest.raises(TelnyxApiError, match="answered 503"):
        client.list_autoresp_configs(PROFILE)
