"""`optout-sync drift report`: opt-outs Telnyx knew of before we did (spec §12)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import click

from app.cli.common import load_settings, resolve_database_url
from app.services import send_errors
from app.store.db import connect


@click.group(help="Drift: opt-outs learnt from Telnyx for numbers we held as textable.")
def drift() -> None:
    pass


@drift.command("report", help="Every drift opt-out, oldest first, and how many by source.")
@click.option("--since", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]), default=None)
@click.option("--profile", default=None, help="Only this messaging profile.")
def report(since: datetime | None, profile: str | None) -> None:
    with connect(resolve_database_url(load_settings())) as conn:
        rows = send_errors.drift(conn, since, profile)
    for row in rows:
        click.echo(
            f"{row['recorded_at']:%Y-%m-%dT%H:%M:%S%z}  seq {row['seq']}  {row['phone_number']}"
            f"  profile={row['messaging_profile_id']}  from={row['our_number'] or '-'}"
            f"  {row['source']}  was {row['previous_status']}  {row['text'] or ''}".rstrip()
        )
    by_source = Counter(row["source"] for row in rows)
    summary = ", ".join(f"{n:,} from {source}" for source, n in sorted(by_source.items()))
    click.echo(
        f"{len(rows):,} numbers were textable here but opted out at Telnyx"
        + (f": {summary}" if rows else "")
    )
