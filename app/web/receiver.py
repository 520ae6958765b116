"""POST /webhooks/messaging: verify, record durably, hand off (spec §3)."""

from __future__ import annotations

import logging

import orjson
import psycopg
from flask import Blueprint, Response, current_app, request
from psycopg_pool import PoolTimeout

from app.config import Settings
from app.store import inbox
from app.store.db import RECEIVER, get_pool
from app.telnyx.events import (
    MESSAGE_RECEIVED,
    InvalidPayload,
    parse_envelope,
    parse_inbound_message,
)
from app.telnyx.signature import SignatureError, verify_webhook
from app.web import metrics
from app.web.handoff import Enqueuer

log = logging.getLogger(__name__)
bp = Blueprint("receiver", __name__)

MAX_BODY_BYTES = 1024 * 1024
# Telnyx gives up after 2 s. A sync gunicorn worker uses one connection at a time, so waiting
# for one only happens while the database is unreachable: then answer 503 quickly.
POOL_WAIT_SECONDS = 0.5


def _answer(outcome: str, http_status: int, **body: str) -> Response:
    metrics.WEBHOOKS.labels(outcome=outcome).inc()
    # orjson and a plain Response: a fraction of jsonify's cost, on every webhook.
    return Response(orjson.dumps(body), http_status, mimetype="application/json")


@bp.post("/webhooks/messaging")
def receive_messaging_webhook() -> Response:
    settings: Settings = current_app.config["SETTINGS"]
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return _answer("too_large", 413, error=f"body is larger than {MAX_BODY_BYTES} bytes")
    body = request.get_data(cache=False)  # raw bytes, exactly as signed
    try:
        signed_at = verify_webhook(
            body, request.headers, settings.public_keys, settings.webhook_tolerance_seconds
        )
    except SignatureError as exc:
        return _answer("unauthorized", 401, error=str(exc))

    event_id: str | None = None
    event_type: str | None = None
    status, problem = "pending", None
    try:
        envelope = parse_envelope(body)
        event_id, event_type = envelope.event_id, envelope.event_type
        if event_type == MESSAGE_RECEIVED:
            parse_inbound_message(envelope)
        else:
            status = "ignored"
    except InvalidPayload as exc:
        status, problem = "invalid", str(exc)

    assert settings.database_url is not None
    pool = get_pool(settings.database_url, RECEIVER)
    # Pooled connections may have been dropped by a database restart since their last use:
    # then the pool is checked and one more try made on a working connection. The insert is
    # idempotent by event id: a first try that did land makes the second report a duplicate,
    # never a second row.
    tries = 2 if event_id is not None else 1
    for attempt in range(1, tries + 1):
        try:
            with pool.connection(timeout=POOL_WAIT_SECONDS) as conn:
                # Autocommit: committed (durably) when this returns, before we answer.
                is_new = inbox.record_event(
                    conn,
                    event_id=event_id,
                    event_type=event_type,
                    status=status,
                    raw_body=body,
                    signed_at=signed_at,
                    error=problem,
                )
            break
        except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable) as exc:
            # A lock (a migration, say) or a stuck statement: trying again would miss
            # Telnyx's 2 s deadline; answer now, and Telnyx retries.
            log.error("webhook not recorded, database busy: %s", exc)
            return _answer("unavailable", 503, error="database busy; retry later")
        except (psycopg.OperationalError, PoolTimeout) as exc:
            if attempt < tries and isinstance(exc, psycopg.OperationalError):
                pool.check()  # drop every idle connection that died with the first
                continue
            log.error("webhook not recorded, database unavailable: %s", exc)
            return _answer("unavailable", 503, error="database unavailable; retry later")

    if status == "invalid":
        return _answer("invalid", 400, error=problem or "invalid payload")
    if status == "ignored":
        return _answer("ignored" if is_new else "duplicate", 200,
                       status="ignored" if is_new else "duplicate")  # fmt: skip
    # A duplicate is handed off too: its first delivery may be the try that raced a dropped
    # connection above, and a hand-off costs this request only a flag.
    enqueuer: Enqueuer = current_app.extensions["optout_sync.enqueuer"]
    enqueuer.request_apply()
    if not is_new:
        return _answer("duplicate", 200, status="duplicate")
    return _answer("accepted", 200, status="accepted")
