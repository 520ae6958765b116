"""Liveness, readiness and metrics endpoints for operators."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from app.config import WebSettings
from app.services.operations import metrics_exposition
from app.store.db import API, get_pool
from app.web import metrics
from app.web.handoff import Enqueuer

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    settings: WebSettings = current_app.config["SETTINGS"]
    checks: dict[str, str] = {}
    try:
        with get_pool(settings.database_url, API).connection(timeout=2.0) as conn:
            conn.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    enqueuer: Enqueuer = current_app.extensions["optout_sync.enqueuer"]
    broker_problem = enqueuer.broker_reachable()
    checks["broker"] = "ok" if broker_problem is None else f"unavailable: {broker_problem}"
    ready = all(value == "ok" for value in checks.values())
    return jsonify(status="ready" if ready else "unavailable", checks=checks), (
        200 if ready else 503
    )


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    body, content_type = metrics.render()
    settings: WebSettings = current_app.config["SETTINGS"]
    try:
        # What the workers counted, kept exact in PostgreSQL (time to honour, audit rows).
        with get_pool(settings.database_url, API).connection(timeout=1.0) as conn:
            body += metrics_exposition(conn).encode()
    except Exception as exc:  # the process's own metrics are still worth serving
        body += f"# database counters unavailable: {type(exc).__name__}\n".encode()
    return Response(body, content_type=content_type)
