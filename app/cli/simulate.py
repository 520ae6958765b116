"""`optout-sync simulate`: a signed webhook, as Telnyx would send it."""

from __future__ import annotations

import os
import sys

import click

from app.cli.common import (
    keyword_engine,
    load_settings,
    sender_country,
)


@click.command(help="Send a realistic, signed message.received webhook, as Telnyx would.")
@click.option("--text", required=True, help="The text the subscriber sends.")
@click.option("--from", "from_number", required=True, help="Subscriber's number (E.164).")
@click.option(
    "--to", "to_number", required=True, help="Your Telnyx number (E.164 or a short code)."
)
@click.option("--profile", default=None, help="Messaging profile id (default: the dev profile).")
@click.option(
    "--autoresponse-type",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "none", "STOP", "START", "HELP"], case_sensitive=False),
    help="auto: set it as Telnyx would (only for Telnyx's own keywords).",
)
@click.option("--url", default=None, help="Webhook URL (default: http://127.0.0.1:PORT/…).")
def simulate(
    text: str,
    from_number: str,
    to_number: str,
    profile: str | None,
    autoresponse_type: str,
    url: str | None,
) -> None:
    from app.devtools import simulate as sim

    settings = load_settings()
    signing = os.environ.get("TELNYX_SIGNING_KEY", "").strip()
    try:
        key = sim.load_signing_key(signing) if signing else sim.dev_signing_key(settings.data_dir)
    except ValueError as exc:
        raise click.ClickException(f"TELNYX_SIGNING_KEY: {exc}") from None
    chosen = autoresponse_type.upper()
    profile_id = profile or sim.DEV_PROFILE_ID
    autoresponse = (
        keyword_engine(settings).telnyx_autoresponse_type(
            text, profile_id, sender_country(from_number)
        )
        if chosen == "AUTO"
        else None
        if chosen == "NONE"
        else chosen
    )
    payload = sim.message_received(
        text=text,
        from_number=from_number,
        to_number=to_number,
        profile_id=profile_id,
        autoresponse_type=autoresponse,
    )
    body = sim.encode(payload)
    target = url or f"http://127.0.0.1:{settings.port}/webhooks/messaging"
    try:
        status, answer = sim.post(target, body, sim.sign(body, key))
    except OSError as exc:
        raise click.ClickException(f"could not reach {target}: {exc}") from None
    click.echo(f"event {payload['data']['id']} autoresponse_type={autoresponse}")
    click.echo(f"{status} {answer.strip()}")
    if status >= 300:
        sys.exit(1)
