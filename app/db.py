"""Database access: one connection pool per process, created after fork."""

from __future__ import annotations

import os
import threading

import psycopg
from psycopg_pool import ConnectionPool

_lock = threading.Lock()
_pools: dict[tuple[int, str, bool], ConnectionPool] = {}


def connect(url: str, autocommit: bool = False) -> psycopg.Connection:
    """A single connection, for the CLI and migrations."""
    return psycopg.connect(url, autocommit=autocommit, connect_timeout=5)


def pool_name(autocommit: bool = False) -> str:
    return f"optout-sync-{os.getpid()}{'-autocommit' if autocommit else ''}"


def get_pool(url: str, max_size: int = 4, *, autocommit: bool = False) -> ConnectionPool:
    """The pool for ``url`` in this process (gunicorn and Celery fork, so key by pid).

    An ``autocommit`` pool is for single statements, each its own transaction, committed
    before execute returns (no BEGIN/COMMIT round trips). It also skips the check on every
    checkout (a round trip): its callers retry once on a connection the database dropped.
    """
    key = (os.getpid(), url, autocommit)
    pool = _pools.get(key)
    if pool is None:
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                name = pool_name(autocommit)
                pool = ConnectionPool(
                    url,
                    min_size=1,
                    max_size=max_size,
                    # application_name: a DBA sees which process holds a connection.
                    kwargs={
                        "connect_timeout": 5,
                        "autocommit": autocommit,
                        "application_name": name,
                    },
                    # A dead connection (database restarted) is replaced, not handed out.
                    check=None if autocommit else ConnectionPool.check_connection,
                    open=False,
                    name=name,
                )
                # Open without waiting: the web process must start (and answer 503) while
                # the database is still down.
                pool.open(wait=False)
                _pools[key] = pool
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
