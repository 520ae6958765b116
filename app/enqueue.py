"""The web process's one way into Celery: send tasks by name, never import their bodies."""

from __future__ import annotations

import logging
import threading
import time

from celery import Celery

from app import celery_config
from app.config import Settings

log = logging.getLogger(__name__)

# After a failed send, skip sending for this long: the receiver must answer Telnyx within 2 s,
# and while the broker is down each attempt would cost a connect timeout. Events accepted
# meanwhile are durable in PostgreSQL and the beat sweeper applies them.
BROKER_BACKOFF_SECONDS = 5.0


class Enqueuer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Celery | None = None
        self._lock = threading.Lock()
        self._skip_until = 0.0

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

    def apply_pending(self) -> bool:
        """Ask a worker to apply pending events. False (logged) when the broker is down:
        the event is already durable and the beat sweeper will pick it up."""
        if time.monotonic() < self._skip_until:
            return False
        try:
            self.client.send_task(celery_config.APPLY_PENDING_TASK, retry=False)
            return True
        except Exception as exc:  # kombu/redis raise many types for "broker unreachable"
            self._skip_until = time.monotonic() + BROKER_BACKOFF_SECONDS
            log.warning(
                "could not enqueue %s (%s); not trying again for %.0f s, the sweeper covers it",
                celery_config.APPLY_PENDING_TASK, exc, BROKER_BACKOFF_SECONDS,
            )  # fmt: skip
            return False

    def broker_reachable(self) -> str | None:
        """None when the broker answers, else the reason."""
        try:
            with self.client.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                                       timeout=2)  # fmt: skip
            return None
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
