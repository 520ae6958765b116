"""`optout-sync audit`: the hash chain and its figures."""

from __future__ import annotations

import sys

import click

from app.cli.common import (
    load_settings,
    parse_when,
    resolve_database_url,
)
from app.store.db import connect


@click.group(help="The audit log.")
def audit() -> None:
    pass


@audit.command("verify", help="Check the hash chain; non-zero exit and the first broken row.")
@click.option(
    "--anchor",
    default=None,
    metavar="SEQ:HASH",
    help="A head printed by an earlier verify and kept elsewhere: proves no rewrite.",
)
def audit_verify(anchor: str | None) -> None:
    from app.consent import audit_chain
    from app.store import audit_log

    kept = None
    if anchor:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise click.BadParameter(
                "expected SEQ:HASH as printed by audit verify", param_hint="--anchor"
            )
        kept = audit_chain.ChainHead(int(seq), digest)
    with connect(resolve_database_url(load_settings())) as conn:
        report = audit_log.verify(conn, kept)
        audit_log.record_check(conn, report)  # the console's chain status
        conn.commit()
    for step in report.clock_steps:
        click.echo(f"warning: {step}; hashes and links hold", err=True)
    if report.broken:
        broken = report.broken
        click.echo(f"audit chain BROKEN at seq {broken.seq}: {broken.reason}", err=True)
        sys.exit(1)
    click.echo(
        f"audit chain intact: {report.intact_rows} rows"
        + (f"; head {report.head}" if report.head else "")
    )


@audit.command("stats", help="Counts by action and source, and time-to-honour percentiles.")
@click.option("--since", default=None, help="ISO 8601; rows recorded from then on.")
@click.option("--profile", default=None, help="Messaging profile id.")
def audit_stats(since: str | None, profile: str | None) -> None:
    from app.store.audit_log import audit_stats as compute

    with connect(resolve_database_url(load_settings())) as conn:
        stats = compute(conn, parse_when(since, "--since"), profile)
    click.echo(f"{'action':<18} {'source':<10} {'rows':>10}")
    for action, source, rows in stats.counts:
        click.echo(f"{action:<18} {source:<10} {rows:>10,}")
    click.echo(f"{'total':<29} {sum(r for _, _, r in stats.counts):>10,}")
    click.echo("\ntime to honour (received -> applied), seconds:")
    for label, values in (("all events", stats.honored_all), ("opt-outs", stats.honored_opt_out)):
        if values is None:
            click.echo(f"  {label:<11} no rows")
            continue
        p50, p90, p99, worst = values
        click.echo(f"  {label:<11} p50 {p50:.3f}  p90 {p90:.3f}  p99 {p99:.3f}  max {worst:.3f}")
