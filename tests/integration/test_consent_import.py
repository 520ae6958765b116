"""`optout-sync import consent`: another platform's list, by the rules of POST /v1/consent."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import psycopg
from click.testing import CliRunner

from app.cli import main

HEADER = "phone_number,messaging_profile_id,action,occurred_at,channel,evidence_consent_text\n"
ROWS = [
    "+13125550201,imported,opt_out,2024-03-01T12:00:00+00:00,,\n",
    "+13125550202,imported,opt_in,2024-03-02T12:00:00+00:00,web_form,Yes text me deals\n",
    "+13125550203,imported,opt_out,2024-03-03T12:00:00+00:00,paper,\n",
]


def run(url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["import", "consent", *args], env={"DATABASE_URL": url})
    return result.exit_code, result.stdout, result.stderr


def audit(url: str) -> list[tuple[str, str, str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT phone_number, action, channel, occurred_at::text FROM audit_log ORDER BY seq"
        ).fetchall()
    return [tuple(row) for row in rows]


def test_a_csv_is_applied_with_history_kept_and_a_rerun_applies_nothing_twice(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    url = make_database()
    path = tmp_path / "list.csv"
    path.write_text(HEADER + "".join(ROWS))

    dry = run(url, str(path), "--dry-run")
    assert dry[0] == 0 and dry[1].startswith("3 rows: 3 would be applied")
    assert audit(url) == []

    assert run(url, str(path))[1].startswith("3 rows: 3 were applied")
    assert audit(url) == [
        ("+13125550201", "opt_out", "import", "2024-03-01 12:00:00+00"),
        ("+13125550202", "opt_in", "web_form", "2024-03-02 12:00:00+00"),
        ("+13125550203", "opt_out", "paper", "2024-03-03 12:00:00+00"),
    ]
    again = run(url, str(path))
    assert again[1].startswith("3 rows: 0 were applied, 0 superseded by newer facts, 3 already")
    assert len(audit(url)) == 3


def test_invalid_rows_are_named_by_line_and_nothing_applies_unless_skipped(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    url = make_database()
    path = tmp_path / "list.csv"
    bad = [
        "3125550204,imported,opt_out,2024-03-01T12:00:00+00:00,,\n",
        "+13125550205,imported,opt_in,2024-03-01T12:00:00+00:00,,\n",
    ]
    path.write_text(HEADER + ROWS[0] + "".join(bad))
    code, _, errors = run(url, str(path))
    assert code == 1
    assert errors.splitlines()[:2] == [
        f"{path}:3: phone_number: '3125550204' is not in E.164 form (+ and country code)",
        f"{path}:4: evidence is required for opt_in: consent_text or its version",
    ]
    assert audit(url) == []
    code, out, _ = run(url, str(path), "--skip-invalid")
    assert code == 0 and out.startswith("1 rows: 1 were applied") and "2 invalid skipped" in out


def test_jsonl_rows_carry_evidence_objects(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    url = make_database()
    path = tmp_path / "list.jsonl"
    path.write_text(
        json.dumps(
            {
                "phone_number": "+13125550206",
                "messaging_profile_id": "imported",
                "action": "opt_in",
                "occurred_at": "2024-03-01T12:00:00+00:00",
                "evidence": {"consent_text": "Yes", "reference": "s3://forms/123.png"},
            }
        )
        + "\n"
    )
    assert run(url, str(path))[1].startswith("1 rows: 1 were applied")
    with psycopg.connect(url) as conn:
        (body,) = conn.execute("SELECT body FROM consent_evidence").fetchone()  # type: ignore[misc]
    assert json.loads(bytes(body)) == {"consent_text": "Yes", "reference": "s3://forms/123.png"}


def test_a_row_repeated_in_the_file_is_applied_once(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    url = make_database()
    path = tmp_path / "list.csv"
    path.write_text(HEADER + ROWS[0] + ROWS[1] + ROWS[0])
    code, out, _ = run(url, str(path))
    assert code == 0 and out.startswith("3 rows: 2 were applied, 0 superseded by newer facts, 1")
    assert [row[0] for row in audit(url)] == ["+13125550201", "+13125550202"]
