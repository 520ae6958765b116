"""`optout-sync import consent`: opt-outs and opt-ins from another platform, by the rules of
POST /v1/consent, in batches that each commit, so a re-run goes on where one stopped."""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from app.cli.common import load_settings, resolve_database_url
from app.consent.intake import ConsentRecord, IntakeError, import_key, parse_import_row
from app.consent.values import Channel
from app.services import intake
from app.store.db import connect

BATCH_ROWS = 5000


def _rows(path: Path, fmt: str) -> Iterator[tuple[int, Any]]:
    """(line number, row) of a CSV file with a header row, or of a JSONL file."""
    with path.open(encoding="utf-8", newline="") as file:
        if fmt == "csv":
            reader = csv.DictReader(file)
            for row in reader:
                yield reader.line_num, row
        else:
            for number, line in enumerate(file, start=1):
                if line.strip():
                    try:
                        yield number, json.loads(line)
                    except json.JSONDecodeError as exc:
                        yield number, f"not JSON: {exc.msg}"


@click.group("import", help="Import consent from other platforms.")
def import_() -> None:
    pass


@import_.command("consent", help="Apply a CSV (header row) or JSONL file of consent events.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    default=None,
    help="Default: by the file's extension.",
)
@click.option(
    "--channel",
    type=click.Choice([c.value for c in Channel]),
    default="import",
    show_default=True,
    help="For rows that name none.",
)
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@click.option("--skip-invalid", is_flag=True, help="Apply the valid rows despite bad ones.")
def consent(file: Path, fmt: str | None, channel: str, dry_run: bool, skip_invalid: bool) -> None:
    fmt = fmt or ("jsonl" if file.suffix.lower() in (".jsonl", ".ndjson") else "csv")
    now = datetime.now(UTC)
    records: list[ConsentRecord] = []
    problems = 0
    for line, row in _rows(file, fmt):
        try:
            if not isinstance(row, dict):
                raise IntakeError(str(row) if isinstance(row, str) else "not an object")
            record = parse_import_row(row, "row", now, Channel(channel))
            records.append(replace(record, idempotency_key=import_key(record)))
        except IntakeError as exc:
            problems += 1
            click.echo(f"{file}:{line}: {str(exc).removeprefix('row.')}", err=True)
    if problems and not skip_invalid:
        raise click.ClickException(
            f"{problems} invalid row(s); nothing applied (--skip-invalid applies the others)"
        )
    counts: Counter[str] = Counter()
    show = sys.stderr.isatty()
    with connect(resolve_database_url(load_settings())) as conn:
        for start in range(0, len(records), BATCH_ROWS):
            with conn.transaction(force_rollback=dry_run):
                results = intake.apply_records(conn, records[start : start + BATCH_ROWS])
            counts.update(result.status for result in results)
            if show:
                done = min(start + BATCH_ROWS, len(records))
                click.echo(f"\r{done:,}/{len(records):,} rows", err=True, nl=False)
    if show:
        click.echo(err=True)
    verb = "would be" if dry_run else "were"
    click.echo(
        f"{len(records):,} rows: {counts['applied']:,} {verb} applied,"
        f" {counts['superseded']:,} superseded by newer facts, {counts['duplicate']:,}"
        f" already imported" + (f"; {problems:,} invalid skipped" if problems else "")
    )
