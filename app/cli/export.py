"""`optout-sync export`: streamed exports."""

from __future__ import annotations

import sys

import click

from app.cli.common import (
    Progress,
    load_settings,
    parse_when,
    resolve_database_url,
)
from app.store.db import connect


@click.command(help="Export the audit log, the suppression list or the carrier blocks (streamed).")
@click.argument("kind", type=click.Choice(["audit", "suppression", "carrier-blocks"]))
@click.option("--since", default=None, help="ISO 8601; inclusive.")
@click.option("--until", default=None, help="ISO 8601; exclusive.")
@click.option("--profile", default=None, help="Messaging profile id.")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True
)
@click.option("--output", "-o", default="-", show_default=True, help="File, or - for stdout.")
@click.option(
    "--spreadsheet-safe",
    is_flag=True,
    help="Prefix cells starting with = + - @ with ' (E.164 numbers start with +).",
)
def export(
    kind: str,
    since: str | None,
    until: str | None,
    profile: str | None,
    fmt: str,
    output: str,
    spreadsheet_safe: bool,
) -> None:
    from app.services import exports

    try:
        request = exports.ExportRequest(
            kind,
            fmt,
            parse_when(since, "--since"),
            parse_when(until, "--until"),
            profile,
            spreadsheet_safe,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    with connect(resolve_database_url(load_settings())) as conn:
        progress = Progress(exports.count_rows(conn, request)) if sys.stderr.isatty() else None
        sink = sys.stdout.buffer if output == "-" else open(output, "wb")  # noqa: SIM115
        try:
            for chunk in exports.stream(conn, request):
                sink.write(chunk)
                if progress:
                    progress.update(chunk)
        finally:
            if sink is not sys.stdout.buffer:
                sink.close()
            else:
                sink.flush()
    if progress:
        progress.finish()
