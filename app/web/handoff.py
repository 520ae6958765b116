"""The web process's one way into Celery: send tasks by name, never import their bodies."""

from __future__ import annotations

import logging
import os
import threading
import time

from celery import Celery

from app import celery_config
from app.config import Settings
from app.web import metrics

log = logging.getLogger(__name__)

# After a failed send, skip sending for this long: the receiver must answer Telnyx within 2 s,
# and while the broker is down each attempt would cost a connect timeout. Events accepted
# meanwhile are durable in PostgreSQL and the beat sweeper applies them.
BROKER_BACKOFF_SECONDS = 5.0


# Requests only raise a flag; a thread sends the task. Tasks claim whatever is pending, so one
# task sent after an event was committed covers it and every event before it: under a burst,
# one task per process every COALESCE_SECONDS, and Celery's ~1 ms of message building is off
# the request path. A lone event is sent at once.
COALESCE_SECONDS = 0.1


class Enqueuer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Celery | None = None
        self._lock = threading.Lock()
        self._skip_until = 0.0
        self._wanted = threading.Event()
        self._sender: threading.Thread | None = None
        self._sender_pid = 0

    @property
    def client(self) -> Celery:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    client = Celery("optout_sync_web", set_as_current=False)
                    client.conf.update(celery_config.build(self._settings))
                    # A sender fails fast; only workers wait for the broker to come back.
                    client.conf.broker_connection_timeout = 0.5
                    client.conf.broker_transport_options = {
                        **client.conf.broker_transport_options,
                        "socket_connect_timeout": 0.5,
                        "socket_timeout": 1.0,
                    }
                    self._client = client
        return self._client

    def request_apply(self) -> None:
        """Ask, without waiting, for a worker to apply pending events: call it after the
        event's commit. A background thread of this process sends one task for every burst
        of requests; if the broker is down, the beat sweeper picks the events up."""
        if self._sender is None or self._sender_pid != os.getpid():
            self._start_sender()
        if not self._wanted.is_set():  # a burst asks once; setting it again costs a lock
            self._wanted.set()

    def _start_sender(self) -> None:
        with self._lock:
            if self._sender is not None and self._sender_pid == os.getpid():
                return
            # After a fork the parent's thread is gone: this process needs its own.
            self._sender_pid = os.getpid()
            self._wanted = threading.Event()
            self._sender = threading.Thread(
                target=self._send_forever, daemon=True, name="optout-sync-handoff"
            )
            self._sender.start()

    def _send_forever(self) -> None:
        wanted = self._wanted
        while True:
            wanted.wait()
            wanted.clear()  # before sending: a request after this point asks again
            sent = False
            try:
                sent = self.apply_pending()
            except Exception:  # this thread must outlive anything: the sweepers are slower
                log.exception("hand-off to the worker failed")
                self._skip_until = time.monotonic() + BROKER_BACKOFF_SECONDS
            if not sent:
                # The events are still waiting: ask again once the backoff is over.
                metrics.ENQUEUE_FAILURES.inc()
                wanted.set()
                time.sleep(max(self._skip_until - time.monotonic(), COALESCE_SECONDS))
                continue
            time.sleep(COALESCE_SECONDS)

    def apply_pending(self) -> bool:
        """Send one apply task now. False (logged) when the broker is down: the events are
        already durable and the beat sweeper will pick them up."""
        if time.monotonic() < self._skip_until:
            return False
        try:
            self.client.send_task(celery_config.APPLY_PENDING_TASK, retry=False)
            return True
        except Exception as exc:  # kombu/redis raise many types for "broker unreachable"
            self._skip_until = time.monotonic() + BROKER_BACKOFF_SECONDS
            log.warning(
                "could not enqueue %s (%s); not trying again for %.0f s, the sweeper covers it",
                celery_config.APPLY_PENDING_TASK,
                exc,
                BROKER_BACKOFF_SECONDS,
            )
            return False

    def broker_reachable(self) -> str | None:
        """None when the broker answers, else the reason."""
        try:
            with self.client.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
            return None
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
