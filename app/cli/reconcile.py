"""`optout-sync reconcile`: opt-outs Telnyx holds that are missing here."""

from __future__ import annotations

import click

from app.cli.common import (
    load_settings,
    parse_when,
    resolve_database_url,
    telnyx_client,
)
from app.store.db import connect


@click.command(help="Record every opt-out Telnyx holds that is missing here (source reconcile).")
@click.option("--profile", default=None, help="Only this messaging profile.")
@click.option("--since", default=None, help="Only opt-outs Telnyx created from then on (ISO 8601).")
def reconcile(profile: str | None, since: str | None) -> None:
    from app.services.reconcile import record_missing
    from app.telnyx.api import TelnyxApiError

    settings = load_settings()
    after = parse_when(since, "--since")
    client = telnyx_client(settings)
    try:
        items = list(client.list_optouts(profile, after.isoformat() if after else None))
    except TelnyxApiError as exc:
        raise click.ClickException(f"could not read Telnyx's opt-out list: {exc}") from None
    with connect(resolve_database_url(settings)) as conn:
        result = record_missing(conn, items, profile)
        conn.commit()
    click.echo(f"Telnyx holds {len(items)} opt-out(s): {result.summary()}")
