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

BATCH_ROWS = 20_000


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
    # Two passes over the file, each holding one batch at most: memory stays flat.
    checked = _records(file, fmt, now, Channel(channel), report=True)
    problems = sum(1 for record in checked if record is None)
    if problems and not skip_invalid:
        raise click.ClickException(
            f"{problems} invalid row(s); nothing applied (--skip-invalid applies the others)"
        )
    counts: Counter[str] = Counter()
    show = sys.stderr.isatty()
    batch: list[ConsentRecord] = []
    with connect(resolve_database_url(load_settings())) as conn:

        def apply() -> None:
            with conn.transaction(force_rollback=dry_run):
                counts.update(r.status for r in intake.apply_records(conn, batch))
            batch.clear()
            if show:
                click.echo(f"\r{counts.total():,} rows", err=True, nl=False)

        for record in _records(file, fmt, now, Channel(channel)):
            if record is not None:
                batch.append(record)
                if len(batch) == BATCH_ROWS:
                    apply()
        if batch:
            apply()
    if show:
        click.echo(err=True)
    verb = "would be" if dry_run else "were"
    click.echo(
        f"{counts.total():,} rows: {counts['applied']:,} {verb} applied,"
        f" {counts['superseded']:,} superseded by newer facts, {counts['duplicate']:,}"
        f" already imported" + (f"; {problems:,} invalid skipped" if problems else "")
    )


def _records(
    file: Path, fmt: str, now: datetime, channel: Channel, report: bool = False
) -> Iterator[ConsentRecord | None]:
    """Each row as a record with its import key, or None where it is invalid (named on
    stderr when ``report``)."""
    for line, row in _rows(file, fmt):
        try:
            if not isinstance(row, dict):
                raise IntakeError(row if isinstance(row, str) else "not an object")
            record = parse_import_row(row, "row", now, channel)
            yield replace(record, idempotency_key=import_key(record))
        except IntakeError as exc:
            if report:
                click.echo(f"{file}:{line}: {str(exc).removeprefix('row.')}", err=True)
            yield None
