"""The `optout-sync` command line (spec §7): one module per command group, registered here."""

from __future__ import annotations

import click

from app.cli import (
    audit,
    autoresp,
    bench,
    classify,
    consent_import,
    db,
    dev,
    drift,
    endpoints,
    events,
    export,
    reconcile,
    review,
    simulate,
)


@click.group(help="optout-sync: Telnyx opt-out/opt-in sync with a tamper-evident audit trail.")
def main() -> None:
    pass


for command in (
    db.db,
    dev.dev,
    simulate.simulate,
    classify.classify,
    autoresp.autoresp,
    reconcile.reconcile,
    review.review,
    events.events,
    export.export,
    bench.bench,
    audit.audit,
    consent_import.import_,
    endpoints.endpoints,
    drift.drift,
):
    main.add_command(command)
