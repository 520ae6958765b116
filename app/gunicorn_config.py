"""gunicorn settings for the Procfile's `web` process (`--config python:app.gunicorn_config`).

It stays outside app.web: gunicorn imports it first, and it must set the metrics folder
before anything imports prometheus_client."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import tempfile
from typing import Any

from gunicorn import glogging

# Counters must add up across workers: prometheus_client's multiprocess mode, one directory
# per server, emptied at start. It must be set before anything imports prometheus_client,
# so before the `app` package is imported below.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="optout-sync-metrics-")
_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]

from app.config import ConfigError, Settings  # noqa: E402
from app.consent.keyword_configs import KeywordsFileError, engine_from_file  # noqa: E402

try:
    _settings = Settings.from_env()
    _settings.require_web()
    # The web process does not classify, but a deployment with a broken file must not start.
    engine_from_file(_settings.keywords_file)
except ConfigError as exc:
    sys.exit(f"optout-sync: {exc}")
except KeywordsFileError as exc:
    sys.exit(f"optout-sync: refusing to start: KEYWORDS_FILE {exc}")

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
# Threaded workers: each process's threads hand their webhooks to one group committer
# (app.services.group_commit), so a burst shares one commit; a long poll of the changes feed
# holds a thread, not a process. The GIL keeps a process to about one core: one per core,
# and one more to cover a process paused in a collection or a slow statement.
threads = int(os.environ.get("WEB_THREADS", "16"))
# WEB_THREADS=1: gunicorn's sync workers, one request per process, as before 0.13.0.
worker_class = "gthread" if threads > 1 else "sync"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() + 1))
# A thread waiting for the GIL waits up to this long behind a busy one (5 ms by default):
# the committer and every answer wait behind verifications and parsing, so switch sooner.
sys.setswitchinterval(0.001)
# The watchdog hears from a gthread worker's main loop, not from its requests; the changes
# feed's long poll (30 s, spec §11) stays under it anyway.
timeout = 45
keepalive = 5
accesslog = os.environ.get("ACCESS_LOG") or None


class _Logger(glogging.Logger):
    """gunicorn's logger, except that logconfig_dict alone does not turn access logs on:
    a line per request costs the receiver about a tenth of its time."""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        if accesslog:
            super().access(resp, req, environ, request_time)


logger_class = _Logger
# gunicorn's and the app's records go through the same JSON, number-masking formatter.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"masked": {"()": "app.logs.formatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "masked"}},
    "root": {"level": os.environ.get("LOG_LEVEL", "INFO").upper(), "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
    },
}


def on_starting(server: Any) -> None:
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
