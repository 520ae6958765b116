"""POST /webhooks/messaging: verify, record durably, hand off (spec §3)."""

from __future__ import annotations

import logging

import orjson
from flask import Blueprint, Response, current_app, request

from app.config import WebSettings
from app.services.group_commit import GroupCommitter
from app.services.receive import DatabaseBusy, DatabaseUnavailable
from app.telnyx.signature import SignatureError, verify_webhook
from app.web import metrics
from app.web.handoff import Enqueuer

log = logging.getLogger(__name__)
bp = Blueprint("receiver", __name__)

MAX_BODY_BYTES = 1024 * 1024
# Telnyx gives up after 2 s: a webhook not committed by then is answered 503 (and retried).
COMMIT_DEADLINE_SECONDS = 1.8
# The committer waits this long for a connection: only while the database is unreachable.
POOL_WAIT_SECONDS = 0.5


def _answer(outcome: str, http_status: int, **body: str) -> Response:
    metrics.WEBHOOKS.labels(outcome=outcome).inc()
    # orjson and a plain Response: a fraction of jsonify's cost, on every webhook.
    return Response(orjson.dumps(body), http_status, mimetype="application/json")


@bp.post("/webhooks/messaging")
def receive_messaging_webhook() -> Response:
    settings: WebSettings = current_app.config["SETTINGS"]
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return _answer("too_large", 413, error=f"body is larger than {MAX_BODY_BYTES} bytes")
    body = request.get_data(cache=False)  # raw bytes, exactly as signed
    try:
        signed_at = verify_webhook(
            body, request.headers, settings.public_keys, settings.webhook_tolerance_seconds
        )
    except SignatureError as exc:
        return _answer("unauthorized", 401, error=str(exc))

    committer: GroupCommitter = current_app.extensions["optout_sync.committer"]
    try:
        receipt = committer.record(body, signed_at, COMMIT_DEADLINE_SECONDS)
    except DatabaseBusy as exc:
        log.error("webhook not recorded, database busy: %s", exc)
        return _answer("unavailable", 503, error="database busy; retry later")
    except DatabaseUnavailable as exc:
        log.error("webhook not recorded, database unavailable: %s", exc)
        return _answer("unavailable", 503, error="database unavailable; retry later")
    if receipt.outcome == "invalid":
        return _answer("invalid", 400, error=receipt.problem or "invalid payload")
    if receipt.to_apply:
        enqueuer: Enqueuer = current_app.extensions["optout_sync.enqueuer"]
        enqueuer.request_apply()
    return _answer(receipt.outcome, 200, status=receipt.outcome)
