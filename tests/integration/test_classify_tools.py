"""Trying the keyword engine on many texts: `classify --file`, and the what-if of
`events reclassify` against a real inbox."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from click.testing import CliRunner

from app.cli import main
from app.devtools.simulate import message_received
from tests.conftest import apply_received
from tests.keyword_configs import KEYWORDS

US_NUMBER, MX_NUMBER = "+13125550147", "+525512345678"


def verdicts(output: str) -> list[tuple[str, str | None, str | None]]:
    return [(v["text"], v["op"], v["rule"]) for v in map(json.loads, output.splitlines())]


def test_classify_file_prints_one_verdict_per_line_of_text_or_jsonl(tmp_path: Path) -> None:
    keywords = tmp_path / "keywords.json"
    keywords.write_text(json.dumps(KEYWORDS))
    texts = tmp_path / "history.txt"
    texts.write_text(
        "STOP\n"
        "I want to cancel my order\n"
        + json.dumps({"text": "parar", "from": MX_NUMBER})
        + "\n"
        + json.dumps({"text": "goodbye", "profile": "vip-profile"})
        + "\n"
        "{not json, so this is a text}\n"
        "I opt out\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        main, ["classify", "--file", str(texts)], env={"KEYWORDS_FILE": str(keywords)}
    )
    assert result.exit_code == 0, result.output
    assert verdicts(result.stdout) == [
        ("STOP", "stop", "exact"),
        ("I want to cancel my order", None, None),
        ("parar", "stop", "exact"),  # Mexico's configuration, by the sender's country
        ("goodbye", "stop", "exact"),  # the VIP profile's
        ("{not json, so this is a text}", None, None),
        ("I opt out", "stop", "per_se"),
    ]


def test_classify_file_reads_stdin_and_names_bad_lines_without_stopping() -> None:
    lines = "\n".join(
        [
            "stop please",
            json.dumps({"text": 5}),
            json.dumps({"text": "hi", "from": "+1"}),
            "leave me alone",
        ]
    )
    result = CliRunner().invoke(main, ["classify", "--file", "-"], input=lines, env={})
    assert result.exit_code == 1
    assert verdicts(result.stdout) == [
        ("stop please", "stop", "per_se"),
        ("leave me alone", "possible_opt_out", "phrase"),
    ]
    assert result.stderr.splitlines() == [
        "<stdin>: line 2: text is not a string",
        "<stdin>: line 3: from: '+1' is not a phone number: (1) The string supplied did not seem to"
        " be a phone number.",
        "Error: 2 line(s) could not be classified",
    ]


def test_classify_wants_a_text_or_a_file() -> None:
    result = CliRunner().invoke(main, ["classify"], env={})
    assert result.exit_code == 2 and "give a TEXT or --file PATH" in result.output


def _applied(url: str, texts: list[tuple[str, str]]) -> None:
    """Texts received and applied by the worker's rules of today (review policy)."""
    apply_received(
        url,
        [
            message_received(
                text=text, from_number=number, to_number="+17735550188", profile_id="what-if"
            )
            for text, number in texts
        ],
    )


def _state(url: str) -> tuple[object, ...]:
    with psycopg.connect(url) as conn:
        return tuple(
            conn.execute(query).fetchall()
            for query in (
                "SELECT count(*), max(seq) FROM audit_log",
                "SELECT phone_number, status FROM subscribers ORDER BY 1",
                "SELECT event_id, status, outcome FROM webhook_events ORDER BY 1",
            )
        )


def test_reclassify_shows_what_new_rules_would_decide_and_changes_nothing(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    url = make_database()
    _applied(
        url,
        [
            ("STOP", "+13125550101"),
            ("I want to cancel my order", "+13125550102"),
            ("please stop texting me", "+13125550103"),
            ("parar", MX_NUMBER),
        ],
    )
    keywords = tmp_path / "keywords.json"
    keywords.write_text(json.dumps(KEYWORDS))
    before = _state(url)
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()

    result = CliRunner().invoke(
        main,
        [
            "events",
            "reclassify",
            "--since",
            since,
            "--keywords",
            str(keywords),
            "--policy",
            "opt_out",
        ],
        env={"DATABASE_URL": url},
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split("  ", 2)[2] for line in lines[:2]] == [
        'possible_opt_out -> opt_out  "please stop texting me"',
        'ordinary -> opt_out  "parar"',
    ]
    assert lines[2].startswith("4 inbound texts since ")
    assert lines[2].endswith(": 2 would be decided differently (policy opt_out)")
    assert lines[3:] == ["  ordinary -> opt_out: 1", "  possible_opt_out -> opt_out: 1"]
    assert _state(url) == before

    unchanged = CliRunner().invoke(
        main, ["events", "reclassify", "--since", since], env={"DATABASE_URL": url}
    )
    assert unchanged.output.splitlines()[-1].endswith(
        ": 0 would be decided differently (policy review)"
    )
