"""Settings read once from the environment (12-factor); one place names every variable."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from nacl.signing import VerifyKey

from app.consent.scopes import Scopes, ScopesError

POSSIBLE_OPT_OUT_POLICIES = ("review", "opt_out", "ignore")


class ConfigError(Exception):
    """A setting is missing or unusable; the message is one line a operator can act on."""


def parse_public_keys(value: str) -> list[VerifyKey]:
    """Decode TELNYX_PUBLIC_KEY: one or several comma-separated base64 Ed25519 keys."""
    keys: list[VerifyKey] = []
    for position, text in enumerate((part.strip() for part in value.split(",")), start=1):
        if not text:
            continue
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"TELNYX_PUBLIC_KEY: key {position} is not valid base64") from None
        if len(raw) != 32:
            raise ConfigError(
                f"TELNYX_PUBLIC_KEY: key {position} decodes to {len(raw)} bytes; "
                "an Ed25519 public key is 32"
            )
        keys.append(VerifyKey(raw))
    return keys


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {text!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    text = env.get(name, "").strip().lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name} must be true or false, got {text!r}")


class Role(StrEnum):
    """What a bearer token may do (spec §13): each role can do what the ones before it can."""

    READ = "read"  # can-send, subscribers, history, changes
    WRITE = "write"  # and consent intake, send errors
    ADMIN = "admin"  # and exports, endpoints, evidence, the console


# What a token may do, by role. A token without a role keeps the first version's access.
_GRANTS: dict[Role | None, frozenset[Role]] = {
    Role.READ: frozenset({Role.READ}),
    Role.WRITE: frozenset({Role.READ, Role.WRITE}),
    Role.ADMIN: frozenset(Role),
    None: frozenset({Role.READ}),
}
# Calls that a token without a role may make although they need a role it does not have.
LEGACY_CALLS = frozenset({"exports"})


@dataclass(frozen=True)
class ApiToken:
    secret: str = field(repr=False)
    role: Role | None  # None: an entry of API_TOKENS without a role prefix

    def may(self, role: Role, call: str = "") -> bool:
        """Whether this token may make a call that needs ``role``."""
        return role in _GRANTS[self.role] or (self.role is None and call in LEGACY_CALLS)


def parse_api_tokens(value: str) -> list[ApiToken]:
    """API_TOKENS: comma-separated, each ``role:secret`` or a bare secret."""
    tokens = []
    for entry in (part.strip() for part in value.split(",")):
        prefix, colon, rest = entry.partition(":")
        if colon and prefix in Role.__members__.values() and rest.strip():
            tokens.append(ApiToken(rest.strip(), Role(prefix)))
        elif entry:
            tokens.append(ApiToken(entry, None))
    return tokens


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    broker_url: str | None
    public_keys: list[VerifyKey] = field(repr=False)
    api_tokens: list[ApiToken] = field(repr=False)
    webhook_tolerance_seconds: int = 300
    port: int = 8000
    data_dir: Path = Path(".data")
    possible_opt_out_policy: str = "review"
    keywords_file: Path | None = None
    telnyx_api_key: str | None = field(default=None, repr=False)
    telnyx_api_base_url: str = "https://api.telnyx.com/v2"
    max_attempts: int = 5
    worker_batch_size: int = 500
    sweep_interval_seconds: int = 30
    celery_queue: str = "optout-sync"
    webhook_retention_days: int = 90
    # Delivery receipts without an error: their ids only have to outlive Telnyx's retries.
    receipt_retention_hours: int = 72
    reconcile_interval_seconds: int = 0  # 0: beat does not reconcile
    consent_scopes: str = ""  # CONSENT_SCOPES as given: inline JSON or a file's path
    # Outbound webhooks may go to http:// and private addresses (receivers on this machine).
    endpoints_allow_private: bool = False
    # Signs the console's sessions (spec §14); without it the console is not served.
    secret_key: str | None = field(default=None, repr=False)
    dev_mode: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        policy = env.get("POSSIBLE_OPT_OUT_POLICY", "review").strip() or "review"
        if policy not in POSSIBLE_OPT_OUT_POLICIES:
            raise ConfigError(
                f"POSSIBLE_OPT_OUT_POLICY must be one of {', '.join(POSSIBLE_OPT_OUT_POLICIES)}; "
                f"got {policy!r}"
            )
        keywords_file = env.get("KEYWORDS_FILE", "").strip()
        return cls(
            database_url=env.get("DATABASE_URL", "").strip() or None,
            broker_url=(
                env.get("CELERY_BROKER_URL", "").strip() or env.get("REDIS_URL", "").strip()
            )
            or None,
            public_keys=parse_public_keys(env.get("TELNYX_PUBLIC_KEY", "")),
            api_tokens=parse_api_tokens(env.get("API_TOKENS", "")),
            webhook_tolerance_seconds=_int(env, "WEBHOOK_TOLERANCE_SECONDS", 300, minimum=1),
            port=_int(env, "PORT", 8000, minimum=1),
            data_dir=Path(env.get("DATA_DIR", "").strip() or ".data"),
            possible_opt_out_policy=policy,
            keywords_file=Path(keywords_file) if keywords_file else None,
            telnyx_api_key=env.get("TELNYX_API_KEY", "").strip() or None,
            telnyx_api_base_url=(
                env.get("TELNYX_API_BASE_URL", "").strip() or "https://api.telnyx.com/v2"
            ).rstrip("/"),
            max_attempts=_int(env, "MAX_ATTEMPTS", 5, minimum=1),
            worker_batch_size=_int(env, "WORKER_BATCH_SIZE", 500, minimum=1),
            sweep_interval_seconds=_int(env, "SWEEP_INTERVAL_SECONDS", 30, minimum=1),
            reconcile_interval_seconds=_int(env, "RECONCILE_INTERVAL", 0, minimum=0),
            webhook_retention_days=_int(env, "WEBHOOK_RETENTION_DAYS", 90, minimum=1),
            receipt_retention_hours=_int(env, "RECEIPT_RETENTION_HOURS", 72, minimum=1),
            celery_queue=env.get("CELERY_QUEUE", "").strip() or "optout-sync",
            consent_scopes=env.get("CONSENT_SCOPES", "").strip(),
            endpoints_allow_private=_flag(env, "ENDPOINTS_ALLOW_PRIVATE"),
            secret_key=env.get("SECRET_KEY", "").strip() or None,
            dev_mode=env.get("OPTOUT_SYNC_DEV", "").strip() in ("1", "true", "yes"),
        )

    def require_web(self) -> WebSettings:
        """The web process's settings, once what it cannot run without is there."""
        missing = [
            name
            for name, present in (
                ("DATABASE_URL", self.database_url),
                ("TELNYX_PUBLIC_KEY", self.public_keys),
                ("API_TOKENS", self.api_tokens),
            )
            if not present
        ]
        if missing:
            raise ConfigError(
                f"refusing to start: {' and '.join(missing)} not set "
                "(run `optout-sync dev` for a local setup that makes its own)"
            )
        try:
            Scopes.parse(self.consent_scopes)
        except ScopesError as exc:
            raise ConfigError(f"refusing to start: CONSENT_SCOPES {exc}") from None
        return WebSettings(**self._values())

    def require_worker(self) -> WorkerSettings:
        """The worker's and beat's settings, once a database and a broker are named."""
        if not self.database_url:
            raise ConfigError("refusing to start: DATABASE_URL not set")
        if not self.broker_url:
            raise ConfigError("refusing to start: REDIS_URL (or CELERY_BROKER_URL) not set")
        return WorkerSettings(**self._values())

    def _values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class WebSettings(Settings):
    """Settings of a process that serves: a database is always named."""

    database_url: str


@dataclass(frozen=True)
class WorkerSettings(Settings):
    """Settings of a worker or beat: a database and a broker are always named."""

    database_url: str
    broker_url: str
