"""The `optout-sync` command line (spec §7)."""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from app.config import POSSIBLE_OPT_OUT_POLICIES, ConfigError, Settings
from app.services import operations
from app.store import inbox, migrations
from app.store.db import connect


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _database_url(settings: Settings) -> str:
    """DATABASE_URL, or the embedded dev database in DATA_DIR (started if needed)."""
    if settings.database_url:
        return settings.database_url
    from app.devtools.devstack import EmbeddedPostgres, ServiceError

    try:
        return EmbeddedPostgres(settings.data_dir).start()
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None


def _embedded_redis(settings: Settings) -> str:
    """The embedded dev Redis in DATA_DIR (started if needed), for when no broker is set."""
    from app.devtools.devstack import EmbeddedRedis, ServiceError

    try:
        return EmbeddedRedis(settings.data_dir).start()
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(help="optout-sync: Telnyx opt-out/opt-in sync with a tamper-evident audit trail.")
def main() -> None:
    pass


# --- db ----------------------------------------------------------------------------------------


@main.group(help="Database schema.")
def db() -> None:
    pass


@db.command(
    "upgrade", help="Apply pending sql/ migrations (idempotent; safe to run twice at once)."
)
def db_upgrade() -> None:
    url = _database_url(_settings())
    with connect(url, autocommit=True) as conn:
        applied = migrations.upgrade(conn)
    click.echo(f"applied {', '.join(applied)}" if applied else "schema is up to date")


# --- dev ---------------------------------------------------------------------------------------


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


@main.command(help="Run everything locally: embedded PostgreSQL and Redis, web, worker, beat.")
@click.option("--port", type=int, default=None, help="Web port (default PORT or 8000).")
def dev(port: int | None) -> None:
    from app.devtools.devstack import EmbeddedPostgres, EmbeddedRedis, ServiceError
    from app.devtools.simulate import DEV_PROFILE_ID, dev_signing_key, public_key_b64
    from app.devtools.supervisor import Supervisor, read_procfile

    settings = _settings()
    _engine(settings)  # refuse to start with an invalid KEYWORDS_FILE, saying why
    try:
        procfile = read_procfile()
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["OPTOUT_SYNC_DEV"] = "1"
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
    token = settings.api_tokens[0] if settings.api_tokens else dev_api_token(data_dir)
    env.setdefault("API_TOKENS", token)

    with connect(env["DATABASE_URL"], autocommit=True) as conn:
        migrations.upgrade(conn)

    commands = {name: procfile[name] for name in ("web", "worker", "beat")}
    base = f"http://127.0.0.1:{env['PORT']}"
    click.echo(
        f"""
optout-sync (dev) — web, worker and beat from the Procfile; Ctrl-C stops everything.

  Webhook URL   {base}/webhooks/messaging
                (set it on your Telnyx messaging profile through a public tunnel)
  API token     {token}
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


# --- simulate / classify -----------------------------------------------------------------------


@main.command(help="Send a realistic, signed message.received webhook, as Telnyx would.")
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

    settings = _settings()
    signing = os.environ.get("TELNYX_SIGNING_KEY", "").strip()
    try:
        key = sim.load_signing_key(signing) if signing else sim.dev_signing_key(settings.data_dir)
    except ValueError as exc:
        raise click.ClickException(f"TELNYX_SIGNING_KEY: {exc}") from None
    chosen = autoresponse_type.upper()
    profile_id = profile or sim.DEV_PROFILE_ID
    autoresponse = (
        _engine(settings).telnyx_autoresponse_type(text, profile_id, _country(from_number))
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


def _engine(settings: Settings) -> Any:
    from app.consent.keyword_configs import KeywordsFileError, engine_from_file

    try:
        return engine_from_file(settings.keywords_file)
    except KeywordsFileError as exc:
        raise click.ClickException(f"KEYWORDS_FILE {exc}") from None


def _country(number: str | None) -> str | None:
    if not number:
        return None
    from app.consent.phones import InvalidPhoneNumber, country_of

    try:
        return country_of(number)
    except InvalidPhoneNumber as exc:
        raise click.BadParameter(str(exc), param_hint="--from") from None


@main.command(
    help="Print the keyword engine's verdict on TEXT as JSON; with --file, on every line of a"
    " file (one text per line, or JSONL objects with text, from and profile), one JSON line each."
)
@click.argument("text", required=False)
@click.option(
    "--file", "path", type=click.File("r", encoding="utf-8"), default=None,
    help="Classify each line of PATH (- for stdin) instead of TEXT.",
)  # fmt: skip
@click.option(
    "--profile", default=None, help="Messaging profile id (selects KEYWORDS_FILE configs)."
)
@click.option(
    "--from", "from_number", default=None, help="Sender's number: its country selects configs."
)
@click.option("--autoresponse-type", default=None, help="As Telnyx would set it.")
def classify(
    text: str | None,
    path: Any,
    profile: str | None,
    from_number: str | None,
    autoresponse_type: str | None,
) -> None:
    if (text is None) == (path is None):
        raise click.UsageError("give a TEXT or --file PATH")
    engine = _engine(_settings())
    if path is None:
        verdict = engine.classify(text, autoresponse_type, profile, _country(from_number))
        click.echo(json.dumps(asdict(verdict), ensure_ascii=False))
        return
    from app.consent.classify_lines import LineError, classify_lines

    _country(from_number)  # a bad --from is one error, not one per line
    out = sys.stdout.buffer
    problems = 0
    for result in classify_lines(path, engine, profile, from_number):
        if isinstance(result, LineError):
            problems += 1
            click.echo(f"{getattr(path, 'name', '-')}: {result}", err=True)
        else:
            out.write(result)
    if problems:
        raise click.ClickException(f"{problems} line(s) could not be classified")


# --- autoresp ----------------------------------------------------------------------------------


@main.group(help="Custom keyword configurations (Telnyx autoresp_configs).")
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


def _telnyx(settings: Settings) -> Any:
    from app.telnyx.api import TelnyxClient

    if not settings.telnyx_api_key:
        raise click.ClickException("TELNYX_API_KEY is not set: it is needed to call Telnyx's API")
    return TelnyxClient(settings.telnyx_api_key, settings.telnyx_api_base_url)


def _remote_configs(settings: Settings, profile: str) -> list[Any]:
    from app.consent.keyword_configs import from_telnyx
    from app.telnyx.api import TelnyxApiError

    try:
        items = _telnyx(settings).list_autoresp_configs(profile)
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
    configs = _remote_configs(_settings(), profile)
    text = json.dumps([{**c.as_file_entry(), "id": c.id} for c in configs],
                      indent=2, ensure_ascii=False) + "\n"  # fmt: skip
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
    changes = plan_changes(local, _remote_configs(_settings(), profile))
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

    settings = _settings()
    local = _local_configs(file, profile)
    changes = plan_changes(local, _remote_configs(settings, profile))
    client = _telnyx(settings)
    for change in changes:
        try:
            if change.kind == "create" and change.local:
                client.create_autoresp_config(profile, change.local.as_telnyx_body())
            elif change.kind == "update" and change.local and change.remote and change.remote.id:
                client.update_autoresp_config(profile, change.remote.id,
                                              change.local.as_telnyx_body())  # fmt: skip
            elif change.kind == "delete" and change.remote and change.remote.id:
                client.delete_autoresp_config(profile, change.remote.id)
        except TelnyxApiError as exc:
            raise click.ClickException(f"{change.describe()} failed: {exc}") from None
        click.echo(change.describe())
    click.echo(f"{len(changes)} change(s) pushed to Telnyx profile {profile}")


# --- reconcile ---------------------------------------------------------------------------------


@main.command(help="Record every opt-out Telnyx holds that is missing here (source reconcile).")
@click.option("--profile", default=None, help="Only this messaging profile.")
@click.option("--since", default=None, help="Only opt-outs Telnyx created from then on (ISO 8601).")
def reconcile(profile: str | None, since: str | None) -> None:
    from app.services.reconcile import record_missing
    from app.telnyx.api import TelnyxApiError

    settings = _settings()
    after = _when(since, "--since")
    client = _telnyx(settings)
    try:
        items = list(client.list_optouts(profile, after.isoformat() if after else None))
    except TelnyxApiError as exc:
        raise click.ClickException(f"could not read Telnyx's opt-out list: {exc}") from None
    with connect(_database_url(settings)) as conn:
        result = record_missing(conn, items, profile)
        conn.commit()
    click.echo(f"Telnyx holds {len(items)} opt-out(s): {result.summary()}")


# --- review ------------------------------------------------------------------------------------


@main.group(help="Possible opt-outs held for review (POSSIBLE_OPT_OUT_POLICY=review).")
def review() -> None:
    pass


@review.command("list", help="Numbers held for review, oldest first, with their text.")
@click.option("--profile", default=None)
def review_list(profile: str | None) -> None:
    from app.services.review import list_pending

    with connect(_database_url(_settings())) as conn:
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
    with connect(_database_url(_settings())) as conn:
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


# --- events ------------------------------------------------------------------------------------


@main.group(help="The webhook inbox: list, replay and prune events.")
def events() -> None:
    pass


@events.command("list", help="Most recent events first.")
@click.option("--status", type=click.Choice(inbox.STATUSES), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def events_list(status: str | None, limit: int, as_json: bool) -> None:
    with connect(_database_url(_settings())) as conn:
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
    settings = _settings()
    with connect(_database_url(settings)) as conn:
        if all_failed:
            count = inbox.replay_failed(conn)
        else:
            try:
                inbox.replay_event(conn, event_id or "")
            except inbox.ReplayRefused as exc:
                raise click.ClickException(str(exc)) from None
            count = 1
        conn.commit()
    _nudge_worker(settings)
    click.echo(f"queued {count} event(s) again")


@events.command(
    "prune",
    help="Remove processed and ignored events older than WEBHOOK_RETENTION_DAYS (what beat"
    " does hourly). Pending, failed and invalid events stay for replay.",
)
@click.option("--dry-run", is_flag=True, help="Count what would go; remove nothing.")
def events_prune(dry_run: bool) -> None:
    settings = _settings()
    with connect(_database_url(settings)) as conn:
        result = operations.prune_inbox(conn, settings.webhook_retention_days, dry_run=dry_run)
    counts = " and ".join(f"{count:,} {status}" for status, count in result.removed.items())
    click.echo(
        f"{'would remove' if dry_run else 'removed'} {counts} events received before"
        f" {result.cutoff.isoformat(timespec='seconds')}"
        f" (WEBHOOK_RETENTION_DAYS={settings.webhook_retention_days})"
    )


@events.command(
    "reclassify",
    help="What-if before changing the rules: what the engine would decide today for the"
    " inbound texts kept since --since, next to what was decided then. Prints the"
    " differences and their counts; changes nothing.",
)
@click.option("--since", required=True, help="ISO 8601; texts received from then on.")
@click.option(
    "--keywords", "keywords_file", type=click.Path(path_type=Path), default=None,
    help="A KEYWORDS_FILE to try (default: the one configured).",
)  # fmt: skip
@click.option(
    "--policy", type=click.Choice(POSSIBLE_OPT_OUT_POLICIES), default=None,
    help="A POSSIBLE_OPT_OUT_POLICY to try (default: the one configured).",
)  # fmt: skip
def events_reclassify(since: str, keywords_file: Path | None, policy: str | None) -> None:
    from app.consent.keyword_configs import KeywordsFileError, engine_from_file
    from app.services.apply_events import Rules
    from app.services.reclassify import Summary, reclassify

    settings = _settings()
    try:
        engine = engine_from_file(keywords_file or settings.keywords_file)
    except KeywordsFileError as exc:
        raise click.ClickException(f"{keywords_file or 'KEYWORDS_FILE'} {exc}") from None
    rules = Rules(engine, policy or settings.possible_opt_out_policy)
    start = _when(since, "--since")
    summary = Summary()
    with connect(_database_url(settings)) as conn:
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


def _nudge_worker(settings: Settings) -> None:
    """Ask a worker to look now; if the broker is down, beat's sweeper will."""
    if settings.broker_url:
        from app.web.handoff import Enqueuer

        Enqueuer(settings).apply_pending()


# --- export ------------------------------------------------------------------------------------


def _when(value: str | None, name: str) -> Any:
    if value is None:
        return None
    from app.telnyx.events import InvalidPayload, parse_timestamp

    try:
        return parse_timestamp(value, name)
    except InvalidPayload as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


class _Progress:
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
            click.echo(f"\r{done:,}/{self.total:,} rows ({done / max(self.total, 1):.0%})",
                       err=True, nl=False)  # fmt: skip

    def finish(self) -> None:
        click.echo(f"\r{self.total:,}/{self.total:,} rows (100%)", err=True)


@main.command(help="Export the audit log, the suppression list or the carrier blocks (streamed).")
@click.argument("kind", type=click.Choice(["audit", "suppression", "carrier-blocks"]))
@click.option("--since", default=None, help="ISO 8601; inclusive.")
@click.option("--until", default=None, help="ISO 8601; exclusive.")
@click.option("--profile", default=None, help="Messaging profile id.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv",
              show_default=True)  # fmt: skip
@click.option("--output", "-o", default="-", show_default=True, help="File, or - for stdout.")
@click.option(
    "--spreadsheet-safe",
    is_flag=True,
    help="Prefix cells starting with = + - @ with ' (E.164 numbers start with +).",
)
def export(
    kind: str, since: str | None, until: str | None, profile: str | None, fmt: str,
    output: str, spreadsheet_safe: bool,
) -> None:  # fmt: skip
    from app.services import exports

    try:
        request = exports.ExportRequest(kind, fmt, _when(since, "--since"), _when(until, "--until"),
                                        profile, spreadsheet_safe)  # fmt: skip
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    with connect(_database_url(_settings())) as conn:
        progress = _Progress(exports.count_rows(conn, request)) if sys.stderr.isatty() else None
        sink = sys.stdout.buffer if output == "-" else open(output, "wb")  # noqa: SIM115
        try:
            for chunk in exports.stream(conn, request):
                sink.write(chunk)
                if progress:
                    progress.update(chunk)
        finally:
            if sink is not sys.stdout.buffer:
                sink.close()
            else:
                sink.flush()
    if progress:
        progress.finish()


# --- bench -------------------------------------------------------------------------------------


@main.command(help="Measure against baselines taken in the same run (scratch database).")
@click.argument(
    "names",
    nargs=-1,
    type=click.Choice(["receiver", "worker", "lag", "can-send", "export", "classify", "all"]),
)
@click.option(
    "--size",
    type=click.Choice(["tiny", "full"]),
    default="full",
    show_default=True,
    help="tiny: a smoke run in seconds; full: the sizes of spec §8.",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=os.cpu_count() or 1,
    show_default=True,
    help="Worker processes draining the backlog (Celery's prefork default).",
)
@click.option(
    "--generator",
    type=click.Choice(["auto", "wrk", "builtin"]),
    default="auto",
    show_default=True,
    help="HTTP load for the receiver: auto uses wrk when installed.",
)
def bench(names: tuple[str, ...], size: str, processes: int, generator: str) -> None:
    from app.devtools import bench as benchmarks

    chosen = list(benchmarks.BENCHMARKS) if not names or "all" in names else list(names)
    settings = _settings()
    url = _database_url(settings)
    broker_url = settings.broker_url
    if not broker_url and {"receiver", "lag"} & set(chosen):
        broker_url = _embedded_redis(settings)
    context = benchmarks.Context(
        # The scratch databases live on the same server: connect to its maintenance database.
        server_url=url.rsplit("/", 1)[0] + "/postgres",
        broker_url=broker_url,
        size=benchmarks.SIZES[size],
        processes=processes,
        generator=generator,
        batch_size=settings.worker_batch_size,
    )
    click.echo(f"optout-sync bench ({size}): figure, baseline from the same run, ratio")
    for figure in benchmarks.run(context, chosen):
        click.echo(figure.line())


# --- audit -------------------------------------------------------------------------------------


@main.group(help="The audit log.")
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
    with connect(_database_url(_settings())) as conn:
        report = audit_log.verify(conn, kept)
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

    with connect(_database_url(_settings())) as conn:
        stats = compute(conn, _when(since, "--since"), profile)
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
