"""Group commit for the receiver (spec §3, §8): the threads of one web process hand their
verified deliveries to one committer thread, which inserts every delivery waiting at that
moment in one statement and one commit, then answers each. Durability is unchanged (no
delivery is answered before its row is committed), but a burst of N webhooks pays for one
round trip and one WAL flush instead of N. Nothing waits on purpose: while one batch
commits, the next gathers."""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from psycopg_pool import ConnectionPool

from app.services.receive import (
    DatabaseBusy,
    DatabaseUnavailable,
    Outcome,
    Receipt,
    delivery_of,
    receipt_of,
    record_deliveries,
)
from app.store import inbox

log = logging.getLogger(__name__)

# More than any burst one process's threads can hold, less than a statement to fear.
MAX_BATCH = 500


@dataclass
class _Waiting:
    delivery: inbox.Delivery
    # Held until the committer releases it: a latch at half the cost of an Event, which
    # builds a Condition for every webhook.
    done: threading.Lock = field(default_factory=threading.Lock)
    outcome: Outcome | None = None

    def __post_init__(self) -> None:
        self.done.acquire()


class GroupCommitter:
    def __init__(self, pool: Callable[[], ConnectionPool], pool_wait: float) -> None:
        self._pool = pool
        self._pool_wait = pool_wait
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Waiting] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def record(self, body: bytes, signed_at: int, deadline: float) -> Receipt:
        """Keep one verified delivery, committed with whatever else is waiting, within
        ``deadline`` seconds; raise DatabaseBusy or DatabaseUnavailable if it cannot be."""
        waiting = _Waiting(delivery_of(body, signed_at))
        self._ensure_running()
        self._queue.put(waiting)
        if not waiting.done.acquire(timeout=deadline):
            # Still queued or in flight: it may yet land, and a retry is then a duplicate.
            raise DatabaseUnavailable(f"not committed within {deadline:.1f} s")
        if isinstance(waiting.outcome, Exception):
            raise waiting.outcome
        return receipt_of(waiting.delivery, bool(waiting.outcome))

    def _ensure_running(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            # After a fork the parent's thread and queue are not this process's.
            self._pid = os.getpid()
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(
                target=self._commit_forever, daemon=True, name="optout-sync-group-commit"
            )
            self._thread.start()

    def _commit_forever(self) -> None:
        waiting_queue = self._queue
        while True:
            batch = [waiting_queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(waiting_queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(batch)

    def _commit(self, batch: list[_Waiting]) -> None:
        try:
            outcomes = record_deliveries(self._pool(), [w.delivery for w in batch], self._pool_wait)
        except Exception as exc:  # every waiter hears why; this thread lives on
            outcomes = [exc] * len(batch)
            if not isinstance(exc, (DatabaseBusy, DatabaseUnavailable)):
                log.warning("a batch of %d webhooks was not recorded: %s", len(batch), exc)
        for waiting, outcome in zip(batch, outcomes, strict=True):
            waiting.outcome = outcome
            waiting.done.release()
