"""Compliance exports: columns, formats, filters, spreadsheet safety, HTTP, bounded memory."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from app.cli import main
from app.config import Settings
from app.devtools.bench import fill_audit_rows
from app.devtools.simulate import message_received
from app.services import apply_events
from app.store import inbox
from app.web import create_app
from tests.conftest import API_TOKEN, ROOT, record_pending

SPEC_FIELDS = [
    "seq",
    "recorded_at",
    "event_id",
    "message_id",
    "occurred_at",
    "received_at",
    "messaging_profile_id",
    "phone_number",
    "our_number",
    "country",
    "action",
    "source",
    "text",
    "autoresponse_type",
    "previous_status",
    "new_status",
    "superseded",
    "telnyx_block",
    "honored_seconds",
    "prev_hash",
    "hash",
    # spec §10: appended, so the first version's columns keep their places
    "channel",
    "evidence_sha256",
]
A, B = "profile-a", "profile-b"
LONG, TOLL = "+17735550188", "+18885550123"
T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)

# A mixed stream: (profile, subscriber, our number, text, autoresponse_type, minutes after T0)
STREAM = [
    (A, "+13125550101", LONG, "STOP", "STOP", 0),
    (A, "+13125550102", TOLL, "stop", "STOP", 1),
    (A, "+13125550102", LONG, "START", "START", 2),
    (A, "+13125550103", LONG, "HELP", "HELP", 3),
    (A, "+13125550104", LONG, "Revoke", None, 4),
    (A, "+13125550104", LONG, '=HYPERLINK("x")', None, 5),  # ordinary: no audit row
    (B, "+13125550105", LONG, "STOP", "STOP", 6),
    (B, "+13125550105", LONG, "START", "START", 7),
    (B, "+13125550106", TOLL, "UNSTOP", "START", 8),
    (B, "+13125550107", LONG, 'stop, "please"\ntexting me', None, 9),  # intent; , " and newline
]
EXPECTED_ROWS = 11  # 9 consent events, two of them to toll-free (two rows each), one ordinary


@pytest.fixture(scope="module")
def export_db(make_database: Callable[[], str]) -> str:
    url = make_database()
    with psycopg.connect(url) as conn:
        for profile, number, ours, text, auto, minute in STREAM:
            payload = message_received(
                text=text,
                from_number=number,
                to_number=ours,
                profile_id=profile,
                autoresponse_type=auto,
                occurred_at=T0 + timedelta(minutes=minute),
            )
            record_pending(conn, payload)
            conn.commit()
        # One event per transaction, so each has its own recorded_at to filter on.
        while claimed := inbox.claim_pending(conn, 1):
            apply_events.apply_claimed(conn, claimed, max_attempts=3)
            conn.commit()
    return url


def run_export(url: str, *args: str) -> str:
    result = CliRunner().invoke(main, ["export", *args], env={"DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    return result.output


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_audit_csv_has_the_spec_columns_in_order_and_every_event(export_db: str) -> None:
    text = run_export(export_db, "audit")
    reader = csv.reader(io.StringIO(text, newline=""))
    assert next(reader) == SPEC_FIELDS
    rows = csv_rows(text)
    assert len(rows) == EXPECTED_ROWS
    assert [int(r["seq"]) for r in rows] == list(range(1, EXPECTED_ROWS + 1))
    first = rows[0]
    assert first["recorded_at"].endswith("+00:00") and "T" in first["recorded_at"]
    assert first["superseded"] == "false" and first["telnyx_block"] == "true"
    assert float(first["honored_seconds"]) >= 0


def test_csv_quotes_commas_quotes_and_newlines_rfc_4180(export_db: str) -> None:
    rows = csv_rows(run_export(export_db, "audit"))
    assert rows[-1]["text"] == 'stop, "please"\ntexting me'
    assert rows[-1]["action"] == "possible_opt_out"


def test_audit_jsonl_is_one_object_per_line_with_the_same_fields(export_db: str) -> None:
    lines = run_export(export_db, "audit", "--format", "jsonl").splitlines()
    objects = [json.loads(line) for line in lines]
    assert len(objects) == EXPECTED_ROWS
    assert all(list(o) == SPEC_FIELDS for o in objects)
    assert objects[0]["seq"] == 1 and objects[0]["telnyx_block"] is True
    assert objects[-1]["text"] == 'stop, "please"\ntexting me'


def test_filters_by_profile_and_time(export_db: str) -> None:
    only_b = csv_rows(run_export(export_db, "audit", "--profile", B))
    assert {r["messaging_profile_id"] for r in only_b} == {B} and len(only_b) == 5
    with psycopg.connect(export_db) as conn:
        row = conn.execute("SELECT recorded_at FROM audit_log WHERE seq = 4").fetchone()
    assert row is not None
    cut = row[0].isoformat()
    since = [int(r["seq"]) for r in csv_rows(run_export(export_db, "audit", "--since", cut))]
    until = [int(r["seq"]) for r in csv_rows(run_export(export_db, "audit", "--until", cut))]
    # Rows 2 and 3 are one toll-free STOP, so seq 4 starts a new recorded_at.
    assert since == list(range(4, EXPECTED_ROWS + 1))
    assert until == [1, 2, 3]
    window = csv_rows(run_export(export_db, "audit", "--since", cut, "--until", cut))
    assert window == []


def test_until_is_exclusive_and_since_inclusive(export_db: str) -> None:
    with psycopg.connect(export_db) as conn:
        stamps = [
            r[0] for r in conn.execute("SELECT DISTINCT recorded_at FROM audit_log ORDER BY 1")
        ]
    cut = stamps[-1].isoformat()
    before = csv_rows(run_export(export_db, "audit", "--until", cut))
    after = csv_rows(run_export(export_db, "audit", "--since", cut))
    assert len(before) + len(after) == EXPECTED_ROWS and after


def test_since_in_the_future_gives_only_the_header(export_db: str) -> None:
    future = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    text = run_export(export_db, "audit", "--since", future)
    assert text.splitlines() == [",".join(SPEC_FIELDS)]
    assert run_export(export_db, "audit", "--since", future, "--format", "jsonl") == ""


def test_spreadsheet_safe_neutralises_formula_cells(export_db: str) -> None:
    plain = csv_rows(run_export(export_db, "audit"))
    safe = csv_rows(run_export(export_db, "audit", "--spreadsheet-safe"))
    assert plain[0]["phone_number"] == "+13125550101"
    assert safe[0]["phone_number"] == "'+13125550101"
    assert safe[0]["our_number"] == "'+17735550188"
    assert safe[0]["action"] == plain[0]["action"] and safe[0]["seq"] == plain[0]["seq"]


def test_suppression_list_holds_exactly_the_opted_out_numbers(export_db: str) -> None:
    rows = csv_rows(run_export(export_db, "suppression"))
    assert sorted((r["messaging_profile_id"], r["phone_number"]) for r in rows) == [
        (A, "+13125550101"),
        (A, "+13125550104"),
    ]
    assert all(r["status"] == "opted_out" and r["opted_out_at"] for r in rows)


def test_carrier_block_list_holds_the_current_blocks(export_db: str) -> None:
    rows = csv_rows(run_export(export_db, "carrier-blocks"))
    assert [(r["toll_free_number"], r["phone_number"], r["blocked"]) for r in rows] == [
        (TOLL, "+13125550102", "true"),
    ]


def test_bad_times_and_ranges_are_refused() -> None:
    bad = CliRunner().invoke(
        main, ["export", "audit", "--since", "yesterday"], env={"DATABASE_URL": "postgresql://x/y"}
    )
    assert bad.exit_code == 2 and "not an ISO 8601 time" in bad.output


# --- HTTP ---------------------------------------------------------------------------------


@pytest.fixture
def export_client(export_db: str, settings: Settings) -> FlaskClient:
    return create_app(replace(settings, database_url=export_db), {"TESTING": True}).test_client()


AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def test_http_export_streams_csv_with_a_filename(export_client: FlaskClient) -> None:
    response = export_client.get("/v1/exports/audit", headers=AUTH)
    assert response.status_code == 200 and response.is_streamed
    assert response.headers["Content-Type"].startswith("text/csv")
    disposition = response.headers["Content-Disposition"]
    assert (
        disposition.startswith('attachment; filename="optout-sync-audit-') and ".csv" in disposition
    )
    rows = csv_rows(response.get_data(as_text=True))
    assert len(rows) == EXPECTED_ROWS and list(rows[0]) == SPEC_FIELDS


def test_http_export_jsonl_with_filters(export_client: FlaskClient) -> None:
    response = export_client.get(
        "/v1/exports/audit",
        headers=AUTH,
        query_string={"format": "jsonl", "messaging_profile_id": A},
    )
    assert response.headers["Content-Type"] == "application/x-ndjson"
    objects = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert len(objects) == 6 and {o["messaging_profile_id"] for o in objects} == {A}


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"format": "xlsx"}, "format must be csv or jsonl"),
        ({"since": "soon"}, "ISO 8601"),
        ({"messaging_profile_id": "a\x00b"}, "NUL character"),
    ],
)
def test_http_export_refuses_bad_parameters(
    export_client: FlaskClient, params: dict[str, str], problem: str
) -> None:
    response = export_client.get("/v1/exports/audit", headers=AUTH, query_string=params)
    assert response.status_code == 400 and problem in response.get_json()["error"]


def test_http_export_needs_a_token(export_client: FlaskClient) -> None:
    assert export_client.get("/v1/exports/audit").status_code == 401


# --- stats, metrics, retention -----------------------------------------------------------------


def test_audit_stats_counts_by_action_and_source_with_percentiles(export_db: str) -> None:
    result = CliRunner().invoke(main, ["audit", "stats"], env={"DATABASE_URL": export_db})
    assert result.exit_code == 0, result.output
    assert "opt_out            telnyx" in result.output
    assert f"{'total':<29} {EXPECTED_ROWS:>10}" in result.output
    assert "opt-outs    p50" in result.output


def test_metrics_expose_time_to_honour_and_audit_rows(export_client: FlaskClient) -> None:
    text = export_client.get("/metrics").get_data(as_text=True)
    assert "# TYPE optout_sync_honored_seconds histogram" in text
    count = next(
        line for line in text.splitlines() if line.startswith("optout_sync_honored_seconds_count")
    )
    assert float(count.split()[-1]) == EXPECTED_ROWS
    assert 'optout_sync_audit_rows_total{action="opt_out",source="telnyx"} 3' in text
    assert 'optout_sync_honored_seconds_bucket{le="+Inf"} 11' in text


# --- large exports stream in bounded memory ------------------------------------------------------

_PEAK = """
import resource, sys
from app.cli import main
try:
    main(["export", "audit", "--output", sys.argv[1]], standalone_mode=False)
finally:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_kib(url: str, output: Path) -> int:
    result = subprocess.run(
        [sys.executable, "-c", _PEAK, str(output)],
        cwd=ROOT,
        env={"DATABASE_URL": url, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return int(result.stdout.strip().splitlines()[-1])


def fill_audit(url: str, rows: int) -> None:
    # Longer texts than the bench's, so 300k rows make a file far bigger than the process.
    with psycopg.connect(url) as conn:
        fill_audit_rows(conn, rows, text="please stop texting me " * 4)


def test_large_export_streams_in_bounded_memory(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    small, large = make_database(), make_database()
    fill_audit(small, 1_000)
    fill_audit(large, 300_000)
    small_peak = peak_kib(small, tmp_path / "small.csv")
    large_peak = peak_kib(large, tmp_path / "large.csv")
    size_mib = (tmp_path / "large.csv").stat().st_size / 2**20
    with (tmp_path / "large.csv").open() as handle:
        assert sum(1 for _ in handle) == 300_001
    # 300x the rows (~100 MiB of CSV) may not grow the process by more than a few MiB.
    print(
        f"peak RSS: 1k rows {small_peak / 1024:.1f} MiB, 300k rows {large_peak / 1024:.1f} MiB"
        f" for {size_mib:.0f} MiB of CSV"
    )
    assert size_mib > 50
    assert large_peak - small_peak < 16 * 1024
