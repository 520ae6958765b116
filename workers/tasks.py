"""Thin task shells around app.services; every task is safe to run twice or concurrently."""

from __future__ import annotations

import functools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from celery.signals import worker_ready
from psycopg_pool import PoolTimeout

from app import celery_config
from app.outbound.sender import Sender
from app.services import apply_events, operations, outbound
from app.store.db import WORKER, connect, get_pool
from workers.celery_app import celery, rules, settings

log = logging.getLogger(__name__)


def _count_sweeper(claimed: int) -> None:
    with get_pool(settings.database_url, WORKER).connection() as conn:
        operations.count_swept(conn, claimed)


def _drain(sweeping: bool = False) -> apply_events.BatchResult:
    return apply_events.drain(
        get_pool(settings.database_url, WORKER),
        batch_size=settings.worker_batch_size,
        max_attempts=settings.max_attempts,
        rules=rules,
        older_days=sweeping,  # events left pending for days: the sweepers look for them
    )


@celery.task(
    name=celery_config.APPLY_PENDING_TASK,
    bind=True,
    acks_late=True,
    autoretry_for=(psycopg.OperationalError, PoolTimeout),
    retry_backoff=True,
    retry_backoff_max=30,
    max_retries=None,
)
def apply_pending(self: object) -> dict[str, int]:
    """Apply the pending inbox events (any of them: claims are set-based, not per task)."""
    result = _drain()
    if result.out_of_time:  # more may be waiting: carry on in a fresh task
        apply_pending.apply_async()
    if result.processed:  # their audit rows may have webhooks to send
        deliver_webhooks.apply_async()
    return {"claimed": result.claimed, "processed": result.processed, "failed": result.failed}


@celery.task(name=celery_config.SWEEP_TASK, acks_late=True, ignore_result=True)
def sweep() -> dict[str, int]:
    """Beat's safety net: apply events whose task was never sent or was lost."""
    try:
        result = _drain(sweeping=True)
    except (psycopg.OperationalError, PoolTimeout) as exc:
        log.warning("sweep skipped, database unavailable: %s", exc)
        return {"claimed": 0}
    if result.claimed:
        log.info("sweeper applied %d pending events", result.claimed)
        _count_sweeper(result.claimed)
    return {"claimed": result.claimed, "processed": result.processed, "failed": result.failed}


@celery.task(name=celery_config.PRUNE_TASK, acks_late=True, ignore_result=True)
def prune_inbox() -> dict[str, int]:
    """Retention (operations.apply_retention). Its own autocommit session: a partition is
    detached CONCURRENTLY, outside any transaction, so the receiver never waits on it."""
    with connect(settings.database_url, autocommit=True) as conn:
        done = operations.apply_retention(
            conn, settings.webhook_retention_days, settings.receipt_retention_hours
        )
    if any(done.removed.removed.values()) or done.inbox_days.partitions:
        log.info(
            "retention removed inbox events received before %s: %s; days dropped %s"
            " (%d events kept for replay)",
            done.removed.cutoff.isoformat(),
            done.removed.removed,
            done.inbox_days.partitions,
            done.inbox_days.kept,
        )
    if done.created or done.receipt_days:
        log.info(
            "partitions created %s; delivery receipts dropped %s (RECEIPT_RETENTION_HOURS=%d)",
            done.created,
            done.receipt_days,
            settings.receipt_retention_hours,
        )
    return {
        **done.removed.removed,
        "inbox days dropped": len(done.inbox_days.partitions),
        "receipt partitions dropped": len(done.receipt_days),
    }


def _sweep_forever(interval: float) -> None:
    while True:
        time.sleep(interval)
        try:
            result = _drain(sweeping=True)
            if result.claimed:
                log.info("local sweeper applied %d pending events", result.claimed)
                _count_sweeper(result.claimed)
            _deliver()  # webhooks too reach their receivers whatever the broker does
        except Exception as exc:  # the database may be down: try again next interval
            log.warning("local sweeper skipped: %s", exc)


@worker_ready.connect
def start_local_sweeper(**_: Any) -> None:
    """Every worker also sweeps PostgreSQL itself, without the broker.

    Celery workers on Redis can stop consuming after the broker restarts (celery#8030,
    #10205); beat's sweep task travels through that same broker. This thread keeps events
    flowing whatever the broker does: the inbox in PostgreSQL is the queue of record, the
    broker only a low-latency nudge.
    """
    threading.Thread(
        target=_sweep_forever,
        args=(float(settings.sweep_interval_seconds),),
        name="optout-sync-sweeper",
        daemon=True,
    ).start()


@celery.task(name=celery_config.RECONCILE_TASK, acks_late=True, ignore_result=True)
def reconcile_with_telnyx() -> str:
    """Beat's optional repair (RECONCILE_INTERVAL): opt-outs Telnyx holds that we missed.

    Looks back two intervals (at least a day), so one failed run is covered by the next."""
    from datetime import UTC, datetime, timedelta

    from app.services.reconcile import record_missing
    from app.telnyx.api import TelnyxClient

    if not settings.telnyx_api_key:
        log.warning("RECONCILE_INTERVAL is set but TELNYX_API_KEY is not: nothing reconciled")
        return "no TELNYX_API_KEY"
    window = max(2 * settings.reconcile_interval_seconds, 86400)
    since = (datetime.now(UTC) - timedelta(seconds=window)).isoformat()
    client = TelnyxClient(settings.telnyx_api_key, settings.telnyx_api_base_url)
    items = list(client.list_optouts(None, since))
    with get_pool(settings.database_url, WORKER).connection() as conn:
        result = record_missing(conn, items)
    log.info("reconciled %d opt-outs from Telnyx: %s", len(items), result.summary())
    return result.summary()


# Outbound webhooks: threads per worker process sending at once, each batch claimed for
# them all; a fresh executor and sender per process (threads do not survive a fork).
DELIVERY_THREADS = 16


@functools.cache
def _delivery() -> tuple[Sender, ThreadPoolExecutor]:
    return Sender(settings.endpoints_allow_private), ThreadPoolExecutor(DELIVERY_THREADS)


def _deliver() -> bool:
    """Send the due webhooks for up to a minute; True if more may be due."""
    sender, executor = _delivery()
    return outbound.deliver_all_due(
        get_pool(settings.database_url, WORKER),
        sender,
        executor,
        batch=DELIVERY_THREADS * 2,  # two rounds at most: within the claim's lease
        time_budget=60.0,
    )[1]


@celery.task(name=celery_config.DELIVER_TASK, acks_late=True, ignore_result=True)
def deliver_webhooks() -> None:
    """Send the due outbox rows: after every applied batch, and on beat's schedule for
    retries and for audit rows written by the web process or the CLI."""
    try:
        more = _deliver()
    except (psycopg.OperationalError, PoolTimeout) as exc:
        log.warning("webhook delivery skipped, database unavailable: %s", exc)
        return
    if more:
        deliver_webhooks.apply_async()
