"""`optout-sync dev`: what `make run` runs."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Any

import click

from app.cli.common import (
    keyword_engine,
    load_settings,
)
from app.services import operations
from app.store import migrations
from app.store.db import connect


def new_api_token() -> str:
    """A random bearer token of hex digits: unlike URL-safe base64 it never begins with `-`,
    which a command line would take for an option."""
    return secrets.token_hex(24)


def dev_api_token(data_dir: Path) -> str:
    """The dev token kept in DATA_DIR; one an earlier version wrote with a leading `-` is
    replaced."""
    path = data_dir / "dev-api-token"
    if path.exists() and not (value := path.read_text().strip()).startswith("-"):
        return value
    path.parent.mkdir(parents=True, exist_ok=True)
    value = new_api_token()
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


@click.command(help="Run everything locally: embedded PostgreSQL and Redis, web, worker, beat.")
@click.option("--port", type=int, default=None, help="Web port (default PORT or 8000).")
def dev(port: int | None) -> None:
    from app.devtools.devstack import EmbeddedPostgres, EmbeddedRedis, ServiceError
    from app.devtools.simulate import DEV_PROFILE_ID, dev_signing_key, public_key_b64
    from app.devtools.supervisor import Supervisor, read_procfile

    settings = load_settings()
    keyword_engine(settings)  # refuse to start with an invalid KEYWORDS_FILE, saying why
    try:
        procfile = read_procfile()
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["OPTOUT_SYNC_DEV"] = "1"
    # Receivers under development listen on this machine, often without TLS.
    env.setdefault("ENDPOINTS_ALLOW_PRIVATE", "true")
    env.setdefault("LOG_FORMAT", "text")  # readable on a terminal; still masked
    env["DATA_DIR"] = str(data_dir)
    env["PORT"] = str(port or settings.port)
    env.setdefault("WEB_CONCURRENCY", "2")
    env.setdefault("HOST", "127.0.0.1")  # a dev box should not listen on every interface
    # The venv's gunicorn and celery first on PATH, whatever shell started us.
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    started: list[Any] = []
    try:
        if not settings.database_url:
            postgres = EmbeddedPostgres(data_dir)
            env["DATABASE_URL"] = postgres.start()
            started.append(postgres)
        if not settings.broker_url:
            redis = EmbeddedRedis(data_dir)
            env["REDIS_URL"] = redis.start()
            started.append(redis)
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None

    key_path = data_dir / "dev-signing-key"
    if not settings.public_keys:
        env["TELNYX_PUBLIC_KEY"] = public_key_b64(dev_signing_key(data_dir))
    # Your own API_TOKENS, or a dev token with the admin role: it can make every call.
    token = settings.api_tokens[0].secret if settings.api_tokens else dev_api_token(data_dir)
    env.setdefault("API_TOKENS", f"admin:{token}")
    # The console's sessions are signed with it; a dev box makes its own.
    env.setdefault("SECRET_KEY", secrets.token_hex(32))

    with connect(env["DATABASE_URL"], autocommit=True) as conn:
        migrations.upgrade(conn)
        operations.ensure_partitions(conn)

    commands = {name: procfile[name] for name in ("web", "worker", "beat")}
    base = f"http://127.0.0.1:{env['PORT']}"
    click.echo(
        f"""
optout-sync (dev) — web, worker and beat from the Procfile; Ctrl-C stops everything.

  Webhook URL   {base}/webhooks/messaging
                (set it on your Telnyx messaging profile through a public tunnel)
  API token     {token}
  Console       {base}/console/ (log in with the API token)
  Signing key   {key_path if not settings.public_keys else "TELNYX_SIGNING_KEY (your own key)"}
  Database      {env["DATABASE_URL"]}
  Broker        {env["REDIS_URL"] if "REDIS_URL" in env else env.get("CELERY_BROKER_URL")}

Try it:
  optout-sync simulate --text STOP --from +13125550147 --to +17735550188 \\
      --url {base}/webhooks/messaging
  curl -H 'Authorization: Bearer {token}' \\
      '{base}/v1/subscribers/%2B13125550147?messaging_profile_id={DEV_PROFILE_ID}'
""",
        err=False,
    )
    try:
        Supervisor(commands, env).run()
    finally:
        for service in reversed(started):
            service.stop()
        click.echo("optout-sync dev stopped")
