"""Database access: one connection pool per process, created after fork."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg_pool import ConnectionPool

_lock = threading.Lock()
_pools: dict[tuple[int, str, str], ConnectionPool] = {}


def connect(url: str, autocommit: bool = False) -> psycopg.Connection:
    """A single connection, for the CLI and migrations."""
    return psycopg.connect(url, autocommit=autocommit, connect_timeout=5)


@dataclass(frozen=True)
class PoolRole:
    """What one kind of caller may do with the database: how many connections, and how long
    a statement may run or wait for a lock before it gives up (a lock held by a migration or
    a stuck session must not hold a request past its deadline)."""

    name: str
    max_size: int
    autocommit: bool
    statement_timeout_ms: int
    lock_timeout_ms: int


# The receiver answers Telnyx within 2 s: at most 0.5 s waiting for a connection
# (receiver.POOL_WAIT_SECONDS), then 1 s for the insert, a lock wait included; else 503.
# Autocommit: single statements, committed before execute returns (no BEGIN/COMMIT round
# trips); it also skips the check on every checkout, because its caller retries once on a
# connection the database dropped.
RECEIVER = PoolRole(
    "receiver", max_size=4, autocommit=True, statement_timeout_ms=1000, lock_timeout_ms=500
)
# /v1 reads, health and metrics. Exports lift the statement limit for their own transaction.
API = PoolRole(
    "api", max_size=4, autocommit=False, statement_timeout_ms=10_000, lock_timeout_ms=2000
)
# Workers and beat's tasks: a batch is a few hundred rows; a lock wait past 10 s fails the
# attempt, which is counted, instead of stalling the worker.
WORKER = PoolRole(
    "worker", max_size=2, autocommit=False, statement_timeout_ms=60_000, lock_timeout_ms=10_000
)


def get_pool(url: str, role: PoolRole) -> ConnectionPool:
    """The pool for ``url`` and ``role`` in this process (gunicorn and Celery fork, so key by
    pid)."""
    key = (os.getpid(), url, role.name)
    pool = _pools.get(key)
    if pool is None:
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _open_pool(url, role)
                _pools[key] = pool
    return pool


def application_name(role: PoolRole) -> str:
    """What this process's pool for ``role`` calls its connections: a DBA sees which process
    holds a connection, and for what (pg_stat_activity)."""
    return f"optout-sync-{role.name}-{os.getpid()}"


def _open_pool(url: str, role: PoolRole) -> ConnectionPool:
    name = application_name(role)

    def limit(conn: psycopg.Connection) -> None:
        # SET, not a startup option: connection poolers such as PgBouncer refuse those.
        conn.execute(
            "SELECT set_config('statement_timeout', %s, false),"
            " set_config('lock_timeout', %s, false)",
            (f"{role.statement_timeout_ms}ms", f"{role.lock_timeout_ms}ms"),
        )
        if not role.autocommit:
            conn.commit()

    pool = ConnectionPool(
        url,
        min_size=1,
        max_size=role.max_size,
        kwargs={"connect_timeout": 5, "autocommit": role.autocommit, "application_name": name},
        configure=limit,
        # A dead connection (database restarted) is replaced, not handed out.
        check=None if role.autocommit else ConnectionPool.check_connection,
        open=False,
        name=name,
    )
    # Open without waiting: the web process must start (and answer 503) while the database
    # is still down.
    pool.open(wait=False)
    return pool


def _forget_after_fork() -> None:
    # A forked child (Celery's prefork pool) must never touch the parent's pools or a lock
    # another thread of the parent held at fork time.
    global _lock
    _lock = threading.Lock()
    _pools.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def close_pools() -> None:
    with _lock:
        for key, pool in list(_pools.items()):
            if key[0] == os.getpid():
                pool.close()
            del _pools[key]


# --- inserting state rows: a key another transaction inserted first -----------------------
# Existing rows are locked (FOR UPDATE) and read; keys without a row get a fresh state that is
# inserted, with its final values, when saved. Should another transaction insert one of those
# keys first, saving raises KeyTaken and the caller applies again.


class KeyTaken(Exception):
    """A key this transaction meant to insert was inserted by another one meanwhile."""


@contextmanager
def key_taken_on_conflict() -> Iterator[None]:
    # A plain INSERT costs about half an INSERT … ON CONFLICT, and a conflict is rare: the
    # rows were looked up under lock just before.
    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        raise KeyTaken(str(exc)) from exc
