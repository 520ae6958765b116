"""`optout-sync endpoints`: the organisation's receivers of outbound webhooks (spec §11)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import click

from app.cli.common import load_settings, resolve_database_url
from app.outbound.addresses import UnsafeUrl
from app.outbound.messages import EVENT_TYPES
from app.outbound.sender import Sender
from app.services import outbound
from app.store.db import connect


@click.group(help="Receivers of outbound webhooks (Standard Webhooks, signed).")
def endpoints() -> None:
    pass


@contextmanager
def _named_problems() -> Iterator[None]:
    """An unknown endpoint or an unsafe URL ends the command with its one-line reason."""
    try:
        yield
    except (UnsafeUrl, outbound.EndpointError) as exc:
        raise click.ClickException(str(exc)) from None


def _types(value: str | None) -> list[str] | None:
    return [t.strip() for t in value.split(",") if t.strip()] if value else None


@endpoints.command("add", help="Add a receiver; prints its id and signing secret.")
@click.argument("url")
@click.option(
    "--types",
    default=None,
    help=f"Comma-separated webhook types (default: all): {', '.join(EVENT_TYPES)}.",
)
@click.option("--profile", default=None, help="Only this messaging profile's changes.")
def add(url: str, types: str | None, profile: str | None) -> None:
    settings = load_settings()
    with connect(resolve_database_url(settings)) as conn:
        with _named_problems():
            endpoint = outbound.add_endpoint(
                conn, url, _types(types), profile, settings.endpoints_allow_private
            )
        conn.commit()
    click.echo(f"id:     {endpoint.id}")
    click.echo(f"secret: {endpoint.secret}")


@endpoints.command("list", help="Every receiver, oldest first.")
def list_() -> None:
    with connect(resolve_database_url(load_settings())) as conn:
        rows = outbound.list_endpoints(conn)
    for row in rows:
        state = "enabled" if row["enabled"] else f"disabled ({row['disabled_reason']})"
        click.echo(
            f"{row['id']}  {row['url']}  types={','.join(row['event_types'] or ['all'])}"
            f"  profile={row['messaging_profile_id'] or 'all'}  {state}"
        )
    if not rows:
        click.echo("no endpoints", err=True)


@endpoints.command("remove", help="Remove a receiver and the webhooks waiting for it.")
@click.argument("endpoint_id")
def remove(endpoint_id: str) -> None:
    with connect(resolve_database_url(load_settings())) as conn:
        with _named_problems():
            outbound.remove_endpoint(conn, endpoint_id)
        conn.commit()
    click.echo(f"removed {endpoint_id}")


@endpoints.command("test", help="Send a signed ping now and print the answer.")
@click.argument("endpoint_id")
def test(endpoint_id: str) -> None:
    settings = load_settings()
    with connect(resolve_database_url(settings)) as conn, _named_problems():
        answer = outbound.send_ping(conn, endpoint_id, Sender(settings.endpoints_allow_private))
    if answer.status is None:
        raise click.ClickException(f"no answer: {answer.error}")
    click.echo(f"HTTP {answer.status} in {answer.seconds * 1000:.0f} ms  {answer.body}")
    if not 200 <= answer.status < 300:
        raise SystemExit(1)


@endpoints.command("attempts", help="A receiver's latest delivery attempts, newest first.")
@click.argument("endpoint_id")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
def attempts(endpoint_id: str, limit: int) -> None:
    with connect(resolve_database_url(load_settings())) as conn, _named_problems():
        rows = outbound.attempts(conn, endpoint_id, limit)
    for row in rows:
        answer = f"HTTP {row['status_code']}" if row["status_code"] else row["error"]
        click.echo(
            f"{row['attempted_at']:%Y-%m-%dT%H:%M:%S%z}  seq {row['audit_seq']}"
            f"  {row['event_type']}  attempt {row['attempts']}  {answer}"
            f"  {row['duration_ms']} ms  now {row['status']}"
        )


@endpoints.command("replay", help="Deliver again every webhook since a time (same ids).")
@click.argument("endpoint_id")
@click.option("--since", required=True, type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]))
def replay(endpoint_id: str, since: datetime) -> None:
    with connect(resolve_database_url(load_settings())) as conn:
        with _named_problems():
            count = outbound.replay(conn, endpoint_id, since)
        conn.commit()
    click.echo(f"{count:,} webhooks queued for {endpoint_id}")
