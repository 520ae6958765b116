"""`optout-sync classify`: the keyword engine on one text or a file of them."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Any

import click

from app.cli.common import (
    keyword_engine,
    load_settings,
    sender_country,
)


@click.command(
    help="Print the keyword engine's verdict on TEXT as JSON; with --file, on every line of a"
    " file (one text per line, or JSONL objects with text, from and profile), one JSON line each."
)
@click.argument("text", required=False)
@click.option(
    "--file",
    "path",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="Classify each line of PATH (- for stdin) instead of TEXT.",
)
@click.option(
    "--profile", default=None, help="Messaging profile id (selects KEYWORDS_FILE configs)."
)
@click.option(
    "--from", "from_number", default=None, help="Sender's number: its country selects configs."
)
@click.option("--autoresponse-type", default=None, help="As Telnyx would set it.")
def classify(
    text: str | None,
    path: Any,
    profile: str | None,
    from_number: str | None,
    autoresponse_type: str | None,
) -> None:
    if (text is None) == (path is None):
        raise click.UsageError("give a TEXT or --file PATH")
    engine = keyword_engine(load_settings())
    if path is None:
        verdict = engine.classify(text, autoresponse_type, profile, sender_country(from_number))
        click.echo(json.dumps(asdict(verdict), ensure_ascii=False))
        return
    from app.consent.classify_lines import LineError, classify_lines

    sender_country(from_number)  # a bad --from is one error, not one per line
    out = sys.stdout.buffer
    problems = 0
    for result in classify_lines(path, engine, profile, from_number):
        if isinstance(result, LineError):
            problems += 1
            click.echo(f"{getattr(path, 'name', '-')}: {result}", err=True)
        else:
            out.write(result)
    if problems:
        raise click.ClickException(f"{problems} line(s) could not be classified")
