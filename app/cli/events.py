"""`optout-sync events`: the webhook inbox."""

from __future__ import annotations

import json
from pathlib import Path

import click

from app.cli.common import (
    load_settings,
    nudge_worker,
    parse_when,
    resolve_database_url,
)
from app.config import POSSIBLE_OPT_OUT_POLICIES
from app.services import operations
from app.store import inbox
from app.store.db import connect


@click.group(help="The webhook inbox: list, replay and prune events.")
def events() -> None:
    pass


@events.command("list", help="Most recent events first.")
@click.option("--status", type=click.Choice(inbox.STATUSES), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def events_list(status: str | None, limit: int, as_json: bool) -> None:
    with connect(resolve_database_url(load_settings())) as conn:
        rows = inbox.list_events(conn, status, limit)
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, default=str))
        else:
            problem = row["last_error"] or row["outcome"] or ""
            click.echo(
                f"{row['event_id'] or '(no id, pk ' + str(row['pk']) + ')'}  {row['status']:<9}"
                f"  {row['event_type'] or '-'}  attempts={row['attempts']}"
                f"  received={row['received_at']:%Y-%m-%dT%H:%M:%S%z}  {problem}"
            )
    if not rows:
        click.echo("no events" + (f" with status {status}" if status else ""), err=True)


@events.command("replay", help="Queue a failed or invalid event again (or all failed ones).")
@click.argument("event_id", required=False)
@click.option("--failed", "all_failed", is_flag=True, help="Replay every failed event.")
def events_replay(event_id: str | None, all_failed: bool) -> None:
    if bool(event_id) == all_failed:
        raise click.UsageError("give an EVENT_ID or --failed")
    settings = load_settings()
    with connect(resolve_database_url(settings)) as conn:
        if all_failed:
            count = inbox.replay_failed(conn)
        else:
            try:
                inbox.replay_event(conn, event_id or "")
            except inbox.ReplayRefused as exc:
                raise click.ClickException(str(exc)) from None
            count = 1
        conn.commit()
    nudge_worker(settings)
    click.echo(f"queued {count} event(s) again")


@events.command(
    "prune",
    help="Remove processed and ignored events older than WEBHOOK_RETENTION_DAYS (what beat"
    " does hourly). Pending, failed and invalid events stay for replay.",
)
@click.option("--dry-run", is_flag=True, help="Count what would go; remove nothing.")
def events_prune(dry_run: bool) -> None:
    settings = load_settings()
    with connect(resolve_database_url(settings), autocommit=True) as conn:
        done = operations.apply_retention(
            conn, settings.webhook_retention_days, settings.receipt_retention_hours, dry_run
        )
    counts = " and ".join(f"{count:,} {status}" for status, count in done.removed.removed.items())
    days, receipt_days = done.inbox_days.partitions, done.receipt_days
    click.echo(
        f"{'would remove' if dry_run else 'removed'} {counts} events received before"
        f" {done.removed.cutoff.isoformat(timespec='seconds')}"
        f" (WEBHOOK_RETENTION_DAYS={settings.webhook_retention_days})"
    )
    click.echo(
        f"{'would drop' if dry_run else 'dropped'} {len(days)} day(s) of the inbox"
        f"{': ' + ', '.join(days) if days else ''}, keeping {done.inbox_days.kept:,} pending,"
        " failed or invalid events for replay"
    )
    click.echo(
        f"{'would drop' if dry_run else 'dropped'} {len(receipt_days)} day(s) of delivery"
        f" receipts{': ' + ', '.join(receipt_days) if receipt_days else ''}"
        f" (RECEIPT_RETENTION_HOURS={settings.receipt_retention_hours})"
    )


@events.command(
    "reclassify",
    help="What-if before changing the rules: what the engine would decide today for the"
    " inbound texts kept since --since, next to what was decided then. Prints the"
    " differences and their counts; changes nothing.",
)
@click.option("--since", required=True, help="ISO 8601; texts received from then on.")
@click.option(
    "--keywords",
    "keywords_file",
    type=click.Path(path_type=Path),
    default=None,
    help="A KEYWORDS_FILE to try (default: the one configured).",
)
@click.option(
    "--policy",
    type=click.Choice(POSSIBLE_OPT_OUT_POLICIES),
    default=None,
    help="A POSSIBLE_OPT_OUT_POLICY to try (default: the one configured).",
)
def events_reclassify(since: str, keywords_file: Path | None, policy: str | None) -> None:
    from app.consent.keyword_configs import KeywordsFileError, engine_from_file
    from app.services.apply_events import Rules
    from app.services.reclassify import Summary, reclassify

    settings = load_settings()
    try:
        engine = engine_from_file(keywords_file or settings.keywords_file)
    except KeywordsFileError as exc:
        raise click.ClickException(f"{keywords_file or 'KEYWORDS_FILE'} {exc}") from None
    rules = Rules(engine, policy or settings.possible_opt_out_policy)
    start = parse_when(since, "--since")
    summary = Summary()
    with connect(resolve_database_url(settings)) as conn:
        for decision in reclassify(conn, start, rules, summary):
            click.echo(
                f"{decision.event_id}  {decision.received_at:%Y-%m-%dT%H:%M:%S%z}"
                f"  {decision.then} -> {decision.now}  {json.dumps(decision.text)}"
            )
    click.echo(
        f"{summary.texts:,} inbound texts since {start.isoformat()}: {summary.changed:,} would"
        f" be decided differently (policy {rules.possible_opt_out_policy})"
    )
    for (then, now), count in sorted(summary.changes.items()):
        click.echo(f"  {then} -> {now}: {count:,}")
