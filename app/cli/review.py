"""`optout-sync review`: possible opt-outs held for an operator."""

from __future__ import annotations

import json

import click

from app.cli.common import (
    load_settings,
    resolve_database_url,
)
from app.store.db import connect


@click.group(help="Possible opt-outs held for review (POSSIBLE_OPT_OUT_POLICY=review).")
def review() -> None:
    pass


@review.command("list", help="Numbers held for review, oldest first, with their text.")
@click.option("--profile", default=None)
def review_list(profile: str | None) -> None:
    from app.services.review import list_pending

    with connect(resolve_database_url(load_settings())) as conn:
        rows = list_pending(conn, profile)
    for row in rows:
        click.echo(
            f"{row['occurred_at']:%Y-%m-%dT%H:%M:%S%z}  {row['phone_number']}"
            f"  profile={row['messaging_profile_id']}  text={json.dumps(row['text'])}"
        )
    if not rows:
        click.echo("nothing is held for review", err=True)


def _decide(phone: str, profile: str, decision: str) -> None:
    from app.consent.phones import InvalidPhoneNumber, to_e164
    from app.services.review import ReviewError, decide

    try:
        number = to_e164(phone)
    except InvalidPhoneNumber as exc:
        raise click.BadParameter(str(exc), param_hint="PHONE") from None
    with connect(resolve_database_url(load_settings())) as conn:
        try:
            result = decide(conn, profile, number, decision)
        except ReviewError as exc:
            raise click.ClickException(str(exc)) from None
        conn.commit()
    click.echo(
        f"{result.phone_number}: {result.action} ({result.previous_status} -> "
        f"{result.new_status}), audit seq {result.seq}"
    )


@review.command("confirm", help="Confirm the opt-out of PHONE (audited, source operator).")
@click.argument("phone")
@click.option("--profile", required=True, help="Messaging profile id.")
def review_confirm(phone: str, profile: str) -> None:
    _decide(phone, profile, "confirm")


@review.command("dismiss", help="Release PHONE's hold (audited, source operator).")
@click.argument("phone")
@click.option("--profile", required=True, help="Messaging profile id.")
def review_dismiss(phone: str, profile: str) -> None:
    _decide(phone, profile, "dismiss")
