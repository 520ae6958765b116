"""Celery settings shared by the web process (which only sends) and the worker/beat."""

from __future__ import annotations

from typing import Any

from app.config import Settings

APPLY_PENDING_TASK = "optout_sync.apply_pending"
SWEEP_TASK = "optout_sync.sweep"
PRUNE_TASK = "optout_sync.prune_inbox"
RECONCILE_TASK = "optout_sync.reconcile"
DELIVER_TASK = "optout_sync.deliver_webhooks"
# Retries come due on their schedule, and audit rows written outside the worker (the API,
# the CLI) have no applied batch to trigger delivery: beat looks this often.
DELIVER_INTERVAL_SECONDS = 2.0

# Longer than any task can run (task_time_limit), so Redis never re-delivers a task that is
# still running; a task lost with its worker comes back after this, and the sweeper covers it
# sooner because the events themselves stay pending in PostgreSQL.
VISIBILITY_TIMEOUT_SECONDS = 300
TASK_TIME_LIMIT_SECONDS = 120


def build(settings: Settings) -> dict[str, Any]:
    queue = settings.celery_queue
    schedule: dict[str, Any] = {
        "sweep-pending-events": {
            "task": SWEEP_TASK,
            "schedule": float(settings.sweep_interval_seconds),
            "options": {"queue": queue, "expires": float(settings.sweep_interval_seconds)},
        },
        "deliver-webhooks": {
            "task": DELIVER_TASK,
            "schedule": DELIVER_INTERVAL_SECONDS,
            "options": {"queue": queue, "expires": DELIVER_INTERVAL_SECONDS},
        },
        # Hourly: each run removes about an hour's worth of old events, in batches.
        "prune-inbox": {
            "task": PRUNE_TASK,
            "schedule": 3600.0,
            "options": {"queue": queue, "expires": 3600.0},
        },
    }
    if settings.reconcile_interval_seconds:
        schedule["reconcile-with-telnyx"] = {
            "task": RECONCILE_TASK,
            "schedule": float(settings.reconcile_interval_seconds),
            "options": {"queue": queue, "expires": float(settings.reconcile_interval_seconds)},
        }
    return {
        "broker_url": settings.broker_url,
        "task_default_queue": queue,
        "task_ignore_result": True,
        "result_backend": None,
        # At-least-once: acknowledge after the task ran; re-queue if its process died.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": TASK_TIME_LIMIT_SECONDS,
        "task_soft_time_limit": TASK_TIME_LIMIT_SECONDS - 20,
        "broker_transport_options": {
            "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
            "socket_connect_timeout": 2,
        },
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "broker_connection_timeout": 2,
        "worker_hijack_root_logger": False,
        "beat_schedule": schedule,
        "beat_schedule_filename": str(settings.data_dir / "celerybeat-schedule"),
    }
