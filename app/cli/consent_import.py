"""`optout-sync import consent`: opt-outs and opt-ins from another platform, by the rules of
POST /v1/consent: the file is read once into a staging table, then applied in batches that
each commit, so a re-run goes on where one stopped (services.intake)."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from app.cli.common import load_settings, resolve_database_url
from app.consent.intake import ConsentRecord, IntakeError, parse_import_row
from app.consent.values import Channel
from app.services import intake
from app.store.db import connect


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
    invalid: list[int] = []  # line numbers
    show = sys.stderr.isatty()
    # One pass over the file streams the valid rows into a staging table (bad ones are named
    # as they are met); the database then sets repeats aside and the rest is applied in
    # batches. Memory stays flat: neither side holds more than a batch.
    with connect(resolve_database_url(load_settings()), autocommit=True) as conn:
        rows = _records(file, fmt, datetime.now(UTC), Channel(channel), invalid)
        staged = intake.stage_import(conn, _reading(rows, show))
        problems = len(invalid)
        if problems and not skip_invalid:
            raise click.ClickException(
                f"{problems} invalid row(s); nothing applied (--skip-invalid applies the others)"
            )
        with click.progressbar(
            length=staged, label="applying", file=sys.stderr if show else io.StringIO()
        ) as bar:
            counts = intake.apply_import(conn, staged, dry_run=dry_run, on_batch=bar.update)
    verb = "would be" if dry_run else "were"
    click.echo(
        f"{staged:,} rows: {counts[intake.APPLIED]:,} {verb} applied,"
        f" {counts[intake.SUPERSEDED]:,} superseded by newer facts,"
        f" {counts[intake.DUPLICATE]:,} already imported"
        + (f"; {problems:,} invalid skipped" if problems else "")
    )


def _records(
    file: Path, fmt: str, now: datetime, channel: Channel, invalid: list[int]
) -> Iterator[tuple[int, ConsentRecord]]:
    """(line, record) of each valid row; each invalid one is named on stderr and counted."""
    for line, row in _rows(file, fmt):
        try:
            if not isinstance(row, dict):
                raise IntakeError(row if isinstance(row, str) else "not an object")
            yield line, parse_import_row(row, "row", now, channel)
        except IntakeError as exc:
            click.echo(f"{file}:{line}: {str(exc).removeprefix('row.')}", err=True)
            invalid.append(line)


def _reading(
    rows: Iterator[tuple[int, ConsentRecord]], show: bool
) -> Iterator[tuple[int, ConsentRecord]]:
    """The rows, counted on a terminal as they are read."""
    for count, row in enumerate(rows, start=1):
        if show and count % 10_000 == 0:
            click.echo(f"\rreading: {count:,} rows", err=True, nl=False)
        yield row
    if show:
        click.echo(err=True)
