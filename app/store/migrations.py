"""Apply the numbered, forward-only migrations in ``sql/`` under an advisory lock."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

# Any fixed 64-bit number; two releases running at once queue on it instead of colliding.
MIGRATION_LOCK_KEY = 0x6F7074_6F7574  # "optout"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path


def sql_dir() -> Path:
    """Where the migrations are: inside an installed wheel (app/sql), else the checkout's sql/."""
    override = os.environ.get("OPTOUT_SYNC_SQL_DIR")
    if override:
        return Path(override)
    app_dir = Path(__file__).resolve().parent.parent
    packaged = app_dir / "sql"
    return packaged if packaged.is_dir() else app_dir.parent / "sql"


def discover(directory: Path | None = None) -> list[Migration]:
    directory = directory or sql_dir()
    if not directory.is_dir():
        raise FileNotFoundError(f"migrations folder {directory} not found")
    found = []
    for path in sorted(directory.iterdir()):
        match = _NAME.match(path.name)
        if match:
            found.append(Migration(version=path.stem, path=path))
    return found


def upgrade(conn: psycopg.Connection, directory: Path | None = None) -> list[str]:
    """Apply every migration not yet recorded; return the versions applied. Idempotent."""
    if not conn.autocommit:
        raise ValueError("upgrade needs an autocommit connection: each migration is its own tx")
    applied_now: list[str] = []
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for migration in discover(directory):
            if migration.version in done:
                continue
            with conn.transaction():
                # Never queue behind live traffic for long: fail the release instead.
                conn.execute("SET LOCAL lock_timeout = '10s'")
                conn.execute("SET LOCAL statement_timeout = '10min'")
                conn.execute(migration.path.read_text(encoding="utf-8").encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version) VALUES (%s)", (migration.version,)
                )
            applied_now.append(migration.version)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied_now
