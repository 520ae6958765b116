"""What every command shares: settings, the database (embedded when DATABASE_URL is unset),
the keyword engine, times and numbers from options, and a progress line."""

from __future__ import annotations

from typing import Any

import click

from app.config import ConfigError, Settings


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL, or the embedded dev database in DATA_DIR (started if needed)."""
    if settings.database_url:
        return settings.database_url
    from app.devtools.devstack import EmbeddedPostgres, ServiceError

    try:
        return EmbeddedPostgres(settings.data_dir).start()
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None


def embedded_redis(settings: Settings) -> str:
    """The embedded dev Redis in DATA_DIR (started if needed), for when no broker is set."""
    from app.devtools.devstack import EmbeddedRedis, ServiceError

    try:
        return EmbeddedRedis(settings.data_dir).start()
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None


def keyword_engine(settings: Settings) -> Any:
    from app.consent.keyword_configs import KeywordsFileError, engine_from_file

    try:
        return engine_from_file(settings.keywords_file)
    except KeywordsFileError as exc:
        raise click.ClickException(f"KEYWORDS_FILE {exc}") from None


def sender_country(number: str | None) -> str | None:
    if not number:
        return None
    from app.consent.phones import InvalidPhoneNumber, country_of

    try:
        return country_of(number)
    except InvalidPhoneNumber as exc:
        raise click.BadParameter(str(exc), param_hint="--from") from None


def parse_when(value: str | None, name: str) -> Any:
    if value is None:
        return None
    from app.telnyx.events import InvalidPayload, parse_timestamp

    try:
        return parse_timestamp(value, name)
    except InvalidPayload as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


class Progress:
    """Rows written, on stderr, only when stderr is a terminal."""

    def __init__(self, total: int) -> None:
        self.total, self.rows, self.last = total, 0, 0.0

    def update(self, chunk: bytes) -> None:
        import time

        self.rows += chunk.count(b"\n")
        now = time.monotonic()
        if now - self.last > 0.2:
            self.last = now
            done = min(self.rows, self.total)
            click.echo(
                f"\r{done:,}/{self.total:,} rows ({done / max(self.total, 1):.0%})",
                err=True,
                nl=False,
            )

    def finish(self) -> None:
        click.echo(f"\r{self.total:,}/{self.total:,} rows (100%)", err=True)


def nudge_worker(settings: Settings) -> None:
    """Ask a worker to look now; if the broker is down, beat's sweeper will."""
    if settings.broker_url:
        from app.web.handoff import Enqueuer

        Enqueuer(settings).apply_pending()


def telnyx_client(settings: Settings) -> Any:
    from app.telnyx.api import TelnyxClient

    if not settings.telnyx_api_key:
        raise click.ClickException("TELNYX_API_KEY is not set: it is needed to call Telnyx's API")
    return TelnyxClient(settings.telnyx_api_key, settings.telnyx_api_base_url)
