"""`optout-sync simulate`: a signed webhook, as Telnyx would send it."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from app.cli.common import (
    keyword_engine,
    load_settings,
    sender_country,
)


@click.command(help="Send a realistic, signed message.received webhook, as Telnyx would.")
@click.option("--text", default=None, help="The text the subscriber sends.")
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
@click.option(
    "--finalized-error",
    "error_code",
    default=None,
    help="Instead of a text: a message.finalized of a send from --to to --from that Telnyx"
    " refused with this code (40300: blocked due to STOP).",
)
def simulate(
    text: str | None,
    from_number: str,
    to_number: str,
    profile: str | None,
    autoresponse_type: str,
    url: str | None,
    error_code: str | None,
) -> None:
    from app.consent.send_errors import TITLES
    from app.devtools import simulate as sim

    if (text is None) == (error_code is None):
        raise click.UsageError("give --text (a reply) or --finalized-error (a refused send)")

    settings = load_settings()
    signing = os.environ.get("TELNYX_SIGNING_KEY", "").strip()
    try:
        key = sim.load_signing_key(signing) if signing else sim.dev_signing_key(settings.data_dir)
    except ValueError as exc:
        raise click.ClickException(f"TELNYX_SIGNING_KEY: {exc}") from None
    profile_id = profile or sim.DEV_PROFILE_ID
    if error_code is not None:
        payload = sim.message_finalized(
            from_number=to_number,
            to_number=from_number,
            profile_id=profile_id,
            error_code=error_code,
            title=TITLES.get(error_code),
            detail=f"Messages cannot be sent from '{to_number}' to '{from_number}' due to an"
            " existing block rule."
            if error_code == "40300"
            else None,
        )
        _send(payload, url, settings.port, key, f"error {error_code}")
        return
    assert text is not None
    chosen = autoresponse_type.upper()
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
    _send(payload, url, settings.port, key, f"autoresponse_type={autoresponse}")


def _send(payload: dict[str, Any], url: str | None, port: int, key: Any, note: str) -> None:
    from app.devtools import simulate as sim

    body = sim.encode(payload)
    target = url or f"http://127.0.0.1:{port}/webhooks/messaging"
    try:
        status, answer = sim.post(target, body, sim.sign(body, key))
    except OSError as exc:
        raise click.ClickException(f"could not reach {target}: {exc}") from None
    click.echo(f"event {payload['data']['id']} {note}")
    click.echo(f"{status} {answer.strip()}")
    if status >= 300:
        sys.exit(1)
