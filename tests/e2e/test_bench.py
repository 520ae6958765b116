"""`optout-sync bench` at a tiny size: every figure, its baseline and a ratio are printed.
(Speed itself is never asserted: figures are for people; the shape is for this test.)"""

from __future__ import annotations

import re

from click.testing import CliRunner

from app.cli import main
from app.devtools.bench.console import PAGES

LINE = re.compile(
    r"^(?P<name>\S+)\s+(?P<value>[\d,.]+) (?P<unit>\S+)"
    r"\s+baseline (?P<base>[^:]+):"
    r"\s+(?P<baseline>[\d,.]+) \S+\s+ratio (?P<ratio>[\d.]+(?:e-\d+)?)(?:  \((?P<detail>.+)\))?$"
)


def test_bench_prints_each_figure_with_its_baseline_and_ratio(servers: dict[str, str]) -> None:
    result = CliRunner().invoke(
        main,
        ["bench", "all", "--size", "tiny"],
        env={"DATABASE_URL": servers["database"], "REDIS_URL": servers["redis"]},
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("optout-sync bench (tiny)")
    matches = [LINE.match(line) for line in lines[1:]]
    assert all(matches), lines
    assert [m["name"] for m in matches if m] == [
        "receiver",
        "receiver-p99",
        "worker",
        "lag-p99",
        "can-send",
        "export",
        "classify",
        "classify-new",
        "intake",
        "import",
        "changes",
        "outbound",
        "outbound-lag-p99",
        *(f"console-{page}" for page in PAGES),
        "scale-receiver",
        "scale-worker",
        "scale-retention",
    ]
    details = {m["name"]: m["detail"] for m in matches if m}
    # Every signed event the real app got was recorded (answered 200), and every one of the
    # lag run's events was applied.
    assert "signed events recorded" in details["receiver"]
    assert "not 200" not in details["receiver"]
    applied = re.match(r"([\d,]+) of ([\d,]+) applied", details["lag-p99"])
    assert applied and applied[1] == applied[2], details["lag-p99"]
    assert re.match(r"2,000 rows in [\d.]+ s, peak memory \d+ MiB", details["import"])
    for match in matches:
        assert match is not None
        assert float(match["value"].replace(",", "")) > 0
        assert float(match["baseline"].replace(",", "")) > 0
        assert float(match["ratio"]) > 0


def test_bench_leaves_no_scratch_database_behind(servers: dict[str, str]) -> None:
    import psycopg

    result = CliRunner().invoke(
        main, ["bench", "can-send", "--size", "tiny"], env={"DATABASE_URL": servers["database"]}
    )
    assert result.exit_code == 0, result.output
    assert LINE.match(result.output.strip().splitlines()[-1])  # it ran, in a scratch database
    with psycopg.connect(servers["database"]) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'optout_sync_bench_%'"
        ).fetchone()
    assert left is not None and left[0] == 0


def test_receiver_bench_runs_on_the_built_in_generator(servers: dict[str, str]) -> None:
    # Where wrk is not installed (it is optional), the built-in generator does it all.
    result = CliRunner().invoke(
        main,
        ["bench", "receiver", "--size", "tiny", "--generator", "builtin"],
        env={"DATABASE_URL": servers["database"], "REDIS_URL": servers["redis"]},
    )
    assert result.exit_code == 0, result.output
    figures = [LINE.match(line) for line in result.output.strip().splitlines()[1:]]
    assert [m["name"] for m in figures if m] == ["receiver", "receiver-p99"]
    assert all(m and m["detail"].endswith("built-in generator") for m in figures)
    assert figures[0] and "not 200" not in figures[0]["detail"]
