"""`optout-sync autoresp`: custom keyword configurations and Telnyx's autoresp_configs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from app.cli.common import (
    load_settings,
    telnyx_client,
)
from app.config import Settings


@click.group(help="Custom keyword configurations (Telnyx autoresp_configs).")
def autoresp() -> None:
    pass


@autoresp.command("validate", help="Check FILE against Telnyx's limits; one line per problem.")
@click.argument("file", type=click.Path(path_type=Path))
def autoresp_validate(file: Path) -> None:
    from app.consent.keyword_configs import KeywordsFileError, load_keywords_file

    try:
        configs = load_keywords_file(file)
    except KeywordsFileError as exc:
        for problem in exc.problems:
            click.echo(f"{file}: {problem}", err=True)
        sys.exit(1)
    click.echo(f"{file}: {len(configs)} configuration(s), all within Telnyx's limits")


def _remote_configs(settings: Settings, profile: str) -> list[Any]:
    from app.consent.keyword_configs import from_telnyx
    from app.telnyx.api import TelnyxApiError

    try:
        items = telnyx_client(settings).list_autoresp_configs(profile)
    except TelnyxApiError as exc:
        raise click.ClickException(str(exc)) from None
    return [from_telnyx(item, profile) for item in items]


def _local_configs(file: Path, profile: str) -> list[Any]:
    from app.consent.keyword_configs import KeywordsFileError, for_profile, load_keywords_file

    try:
        return for_profile(load_keywords_file(file), profile)
    except KeywordsFileError as exc:
        for problem in exc.problems:
            click.echo(f"{file}: {problem}", err=True)
        raise click.ClickException(f"{file} breaks Telnyx's limits; nothing was sent") from None


@autoresp.command("pull", help="Write the profile's Telnyx configurations as a KEYWORDS_FILE.")
@click.option("--profile", required=True, help="Messaging profile id.")
@click.option("--output", "-o", default="-", show_default=True, help="File, or - for stdout.")
def autoresp_pull(profile: str, output: str) -> None:
    configs = _remote_configs(load_settings(), profile)
    text = (
        json.dumps(
            [{**c.as_file_entry(), "id": c.id} for c in configs], indent=2, ensure_ascii=False
        )
        + "\n"
    )
    if output == "-":
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {len(configs)} configuration(s) to {output}", err=True)


@autoresp.command("diff", help="Show what push would change on Telnyx (exit 1 if anything).")
@click.option("--profile", required=True, help="Messaging profile id.")
@click.argument("file", type=click.Path(path_type=Path))
def autoresp_diff(profile: str, file: Path) -> None:
    from app.consent.keyword_configs import plan_changes

    local = _local_configs(file, profile)
    changes = plan_changes(local, _remote_configs(load_settings(), profile))
    for change in changes:
        click.echo(change.describe())
    if changes:
        sys.exit(1)
    click.echo(f"Telnyx profile {profile} is in step with {file}")


@autoresp.command("push", help="Create, update and delete on Telnyx until it matches FILE.")
@click.option("--profile", required=True, help="Messaging profile id.")
@click.argument("file", type=click.Path(path_type=Path))
def autoresp_push(profile: str, file: Path) -> None:
    from app.consent.keyword_configs import plan_changes
    from app.telnyx.api import TelnyxApiError

    settings = load_settings()
    local = _local_configs(file, profile)
    changes = plan_changes(local, _remote_configs(settings, profile))
    client = telnyx_client(settings)
    for change in changes:
        try:
            if change.kind == "create" and change.local:
                client.create_autoresp_config(profile, change.local.as_telnyx_body())
            elif change.kind == "update" and change.local and change.remote and change.remote.id:
                client.update_autoresp_config(
                    profile, change.remote.id, change.local.as_telnyx_body()
                )
            elif change.kind == "delete" and change.remote and change.remote.id:
                client.delete_autoresp_config(profile, change.remote.id)
        except TelnyxApiError as exc:
            raise click.ClickException(f"{change.describe()} failed: {exc}") from None
        click.echo(change.describe())
    click.echo(f"{len(changes)} change(s) pushed to Telnyx profile {profile}")
