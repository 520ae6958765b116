"""Custom keyword configurations: Telnyx's limits, `autoresp validate`, refusing to start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from app.cli import main
from app.consent.keyword_configs import KeywordEngine, parse_configs
from app.devtools.devstack import free_port
from app.devtools.supervisor import read_procfile
from tests.conftest import ROOT
from tests.keyword_configs import KEYWORDS

GOOD_STOP = "You are unsubscribed and will get no more messages."


def problems_of(document: Any) -> list[str]:
    return parse_configs(document)[1]


def test_the_example_configuration_is_valid() -> None:
    configs, problems = parse_configs(KEYWORDS)
    assert problems == [] and len(configs) == len(KEYWORDS)


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        (
            {"op": "promo", "keywords": ["STOP"], "resp_text": "x", "country_code": "*"},
            "keyword 'STOP' is reserved for op stop",
        ),
        (
            {"op": "start", "keywords": ["HELP"], "resp_text": GOOD_STOP, "country_code": "*"},
            "keyword 'HELP' is reserved for op help",
        ),
        (
            {"op": "help", "keywords": ["start"], "resp_text": GOOD_STOP, "country_code": "*"},
            "keyword 'start' is reserved for op start",
        ),
        (
            {
                "op": "stop",
                "keywords": [f"W{i}" for i in range(21)],
                "resp_text": GOOD_STOP,
                "country_code": "*",
            },
            "has 21 keywords; Telnyx allows at most 20",
        ),
        (
            {"op": "stop", "keywords": ["PARAR"], "resp_text": "Adiós", "country_code": "MX"},
            "resp_text is 5 characters; stop responses need at least 20",
        ),
        (
            {"op": "info", "keywords": ["INFO"], "resp_text": "short", "country_code": "*"},
            "help responses need at least 20",
        ),
        (
            {"op": "stop", "keywords": ["PARAR"], "resp_text": GOOD_STOP, "country_code": "MEX"},
            "country_code 'MEX' is not an ISO 3166-1 alpha-2 code or '*'",
        ),
        (
            {"op": "stop", "keywords": ["PARAR"], "resp_text": GOOD_STOP, "country_code": "XX"},
            "country_code 'XX'",
        ),
        (
            {"op": "", "keywords": ["PARAR"], "resp_text": GOOD_STOP, "country_code": "MX"},
            "op must be",
        ),
        (
            {"op": "stop", "keywords": [], "resp_text": GOOD_STOP, "country_code": "MX"},
            "keywords must be a non-empty list",
        ),
        (
            {"op": "start", "keywords": ["END"], "resp_text": GOOD_STOP, "country_code": "*"},
            "keyword 'END' revokes consent per se",
        ),
        (
            {"op": "stop", "keywords": ["  "], "resp_text": GOOD_STOP, "country_code": "*"},
            "is empty",
        ),
    ],
)
def test_configurations_outside_telnyx_limits_are_refused_naming_the_problem(
    config: dict[str, Any], problem: str
) -> None:
    found = problems_of([config])
    assert any(problem in line for line in found), found
    assert all(line.startswith("config 1") for line in found)


def test_custom_op_needs_no_minimum_response_length() -> None:
    assert (
        problems_of(
            [{"op": "hours", "keywords": ["HOURS"], "resp_text": "9-5", "country_code": "*"}]
        )
        == []
    )


def test_help_and_info_are_the_same_op() -> None:
    configs, _ = parse_configs(
        [{"op": "info", "keywords": ["AIDE"], "resp_text": GOOD_STOP, "country_code": "CA"}]
    )
    assert KeywordEngine(configs).classify("aide", None, "p", "CA").op == "help"


def test_one_keyword_for_two_ops_in_the_same_country_is_refused() -> None:
    found = problems_of(
        [
            {"op": "stop", "keywords": ["BAJA"], "resp_text": GOOD_STOP, "country_code": "MX"},
            {"op": "promo", "keywords": ["baja"], "resp_text": "x", "country_code": "MX"},
        ]
    )
    assert found == ["keyword 'baja' is given to both op stop and op promo for country MX"]


def test_a_file_that_is_not_a_list_is_refused() -> None:
    assert problems_of({"op": "stop"}) == [
        "the file must hold a JSON list of configuration objects"
    ]


def write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "keywords.json"
    path.write_text(json.dumps(document, ensure_ascii=False))
    return path


def test_autoresp_validate_prints_one_line_per_problem_and_exits_nonzero(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            {"op": "stop", "keywords": ["PARAR"], "resp_text": "Adiós", "country_code": "MEX"},
            {"op": "promo", "keywords": ["STOP"], "resp_text": "x", "country_code": "*"},
        ],
    )
    result = CliRunner().invoke(main, ["autoresp", "validate", str(path)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith(f"{path}: config ") for line in lines)


def test_autoresp_validate_accepts_a_good_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["autoresp", "validate", str(write(tmp_path, KEYWORDS))])
    assert result.exit_code == 0 and "7 configuration(s)" in result.output


def test_classify_uses_keywords_file_and_the_senders_country(tmp_path: Path) -> None:
    env = {"KEYWORDS_FILE": str(write(tmp_path, KEYWORDS))}
    result = CliRunner().invoke(main, ["classify", "Parar", "--from", "+525512345678"], env=env)
    verdict = json.loads(result.output)
    assert (verdict["op"], verdict["keyword"], verdict["rule"]) == ("stop", "PARAR", "exact")
    us = CliRunner().invoke(main, ["classify", "Parar", "--from", "+13125550147"], env=env)
    assert json.loads(us.output)["op"] is None


def test_simulator_sets_autoresponse_type_for_configured_keywords_only() -> None:
    engine = KeywordEngine(parse_configs(KEYWORDS)[0])
    assert engine.telnyx_autoresponse_type("parar", "p", "MX") == "STOP"
    assert engine.telnyx_autoresponse_type("inicio", "p", "MX") == "START"
    assert engine.telnyx_autoresponse_type("hours", "p", "US") is None  # custom op
    assert engine.telnyx_autoresponse_type("parar", "p", "US") is None
    assert engine.telnyx_autoresponse_type("REVOKE", "p", "US") is None


@pytest.mark.parametrize("process", ["web", "worker"])
def test_service_refuses_to_start_with_an_invalid_keywords_file(
    tmp_path: Path, process: str
) -> None:
    path = write(
        tmp_path, [{"op": "promo", "keywords": ["STOP"], "resp_text": "x", "country_code": "*"}]
    )
    env = {
        "PATH": str(Path(sys.executable).parent),
        "DATABASE_URL": "postgresql://x/y",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "KEYWORDS_FILE": str(path),
        "TELNYX_PUBLIC_KEY": "A" * 43 + "=",
        "API_TOKENS": "t",
        "PORT": str(free_port()),
    }
    command = read_procfile(ROOT / "Procfile")[process]
    result = subprocess.run(
        ["/bin/sh", "-c", command], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("optout-sync: refusing to start: KEYWORDS_FILE")
    assert "keyword 'STOP' is reserved for op stop" in last
