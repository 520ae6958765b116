"""POST /webhooks/messaging: verify, record durably, hand off (spec §3)."""

from __future__ import annotations

import logging

import psycopg
from flask import Blueprint, Response, current_app, jsonify, request
from psycopg_pool import PoolTimeout

from app import inbox, metrics
from app.config import Settings
from app.db import get_pool
from app.enqueue import Enqueuer
from app.signature import SignatureError, verify_webhook
from app.telnyx_events import (
    MESSAGE_RECEIVED,
    InvalidPayload,
    parse_envelope,
    parse_inbound_message,
)

log = logging.getLogger(__name__)
bp = Blueprint("receiver", __name__)

MAX_BODY_BYTES = 1024 * 1024
# Telnyx gives up after 2 s. A sync gunicorn worker uses one connection at a time, so waiting
# for one only happens while the database is unreachable: then answer 503 quickly.
POOL_WAIT_SECONDS = 0.5


def _answer(outcome: str, http_status: int, **body: str) -> tuple[Response, int]:
    metrics.WEBHOOKS.labels(outcome=outcome).inc()
    return jsonify(body), http_status


@bp.post("/webhooks/messaging")
def receive_messaging_webhook() -> tuple[Response, int]:
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
    try:
        with get_pool(settings.database_url).connection(timeout=POOL_WAIT_SECONDS) as conn:
            is_new = inbox.record_event(
                conn,
                event_id=event_id,
                event_type=event_type,
                status=status,
                raw_body=body,
                signed_at=signed_at,
                error=problem,
            )
        # Leaving the block committed the insert: only now may a worker look for it.
    except (psycopg.OperationalError, PoolTimeout) as exc:
        log.error("webhook not recorded, database unavailable: %s", exc)
        return _answer("unavailable", 503, error="database unavailable; retry later")

    if status == "invalid":
        return _answer("invalid", 400, error=problem or "invalid payload")
    if not is_new:
        return _answer("duplicate", 200, status="duplicate")
    if status == "ignored":
        return _answer("ignored", 200, status="ignored")
    enqueuer: Enqueuer = current_app.extensions["optout_sync.enqueuer"]
    if not enqueuer.apply_pending():
        metrics.ENQUEUE_FAILURES.inc()
    return _answer("accepted", 200, status="accepted")
