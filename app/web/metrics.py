"""Prometheus metrics, correct under several gunicorn workers (multiprocess mode).

gunicorn_config sets PROMETHEUS_MULTIPROC_DIR before any worker imports prometheus_client;
without it (tests, `flask run`) the default single-process registry is used.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    generate_latest,
    multiprocess,
)

WEBHOOKS = Counter(
    "optout_sync_webhooks_total",
    "Webhook deliveries by outcome (accepted, duplicate, ignored, invalid, unauthorized, "
    "too_large, unavailable).",
    ["outcome"],
)
ENQUEUE_FAILURES = Counter(
    "optout_sync_enqueue_failures_total",
    "Hand-offs to the worker that could not be sent (broker down); the sweeper applies"
    " the events they were for.",
)


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
