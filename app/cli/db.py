"""`optout-sync db upgrade`: the release step."""

from __future__ import annotations

import click

from app.cli.common import (
    load_settings,
    resolve_database_url,
)
from app.services import operations
from app.store import migrations
from app.store.db import connect


@click.group(help="Database schema.")
def db() -> None:
    pass


@db.command(
    "upgrade", help="Apply pending sql/ migrations (idempotent; safe to run twice at once)."
)
def db_upgrade() -> None:
    settings = load_settings()
    url = resolve_database_url(settings)
    with connect(url, autocommit=True) as conn:
        applied = migrations.upgrade(conn)
        # The days ahead, so that the first webhooks find their partitions.
        operations.ensure_partitions(conn)
    click.echo(f"applied {', '.join(applied)}" if applied else "schema is up to date")
