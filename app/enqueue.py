"""The web process's one way into Celery: send tasks by name, never import their bodies."""

from __future__ import annotations

import logging
import threading

from celery import Celery

from app import celery_config
from app.config import Settings

log = logging.getLogger(__name__)


class Enqueuer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Celery | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Celery:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    client = Celery("optout_sync_web", set_as_current=False)
                    client.conf.update(celery_config.build(self._settings))
                    self._client = client
        return self._client

    def apply_pending(self) -> bool:
        """Ask a worker to apply pending events. False (logged) when the broker is down:
        the event is already durable and the beat sweeper will pick it up."""
        try:
            self.client.send_task(celery_config.APPLY_PENDING_TASK, retry=False)
            return True
        except Exception as exc:  # kombu/redis raise many types for "broker unreachable"
            log.warning("could not enqueue %s: %s", celery_config.APPLY_PENDING_TASK, exc)
            return False

    def broker_reachable(self) -> str | None:
        """None when the broker answers, else the reason."""
        try:
            with self.client.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
            return None
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
