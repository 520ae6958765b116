"""The console (spec §14): server-rendered pages for compliance officers and operators.

A session opens with an admin token, in a signed, HttpOnly, SameSite=Strict cookie (Secure
whenever the request came over https); every form carries a CSRF token. Served only when
SECRET_KEY is set.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface

from app.config import Role, WebSettings
from app.services import review as review_service
from app.services.overview import overview as read_overview
from app.store.db import API, get_pool

bp = Blueprint("console", __name__, url_prefix="/console")


class _SessionInterface(SecureCookieSessionInterface):
    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure  # Secure over https; a dev box on http still works


def install(app: Flask, settings: WebSettings) -> bool:
    """Serve the console if a SECRET_KEY signs its sessions; False (and why, logged) if not."""
    if not settings.secret_key:
        app.logger.warning("console not served: SECRET_KEY is not set (spec §14)")
        return False
    app.secret_key = settings.secret_key
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict")
    app.session_interface = _SessionInterface()
    app.register_blueprint(bp)
    return True


def operator_name(secret: str) -> str:
    """What the audit log calls the person behind a token: a name that never reveals it."""
    return "admin-" + hashlib.sha256(secret.encode()).hexdigest()[:8]


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


@bp.app_context_processor
def _templates() -> dict[str, Any]:
    return {"csrf_token": csrf_token}


@bp.before_request
def _check_csrf() -> None:
    if request.method == "POST":
        sent = request.form.get("csrf_token", "")
        if not sent or not hmac.compare_digest(sent, str(session.get("csrf", ""))):
            abort(400, "the form's CSRF token is missing or wrong: reload the page")


def signed_in(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if "operator" not in session:
            return redirect(url_for("console.login", next=request.path))
        return view(*args, **kwargs)

    return checked


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    problem = None
    if request.method == "POST":
        settings: WebSettings = current_app.config["SETTINGS"]
        presented = request.form.get("token", "").strip().encode()
        token = next(
            (t for t in settings.api_tokens if hmac.compare_digest(presented, t.secret.encode())),
            None,
        )
        if token is None:
            problem = "That token is not one of API_TOKENS."
        elif not token.may(Role.ADMIN):
            problem = "The console needs a token with the admin role."
        else:
            session.clear()  # a fresh session: nothing carried over from before signing in
            session["operator"] = operator_name(token.secret)
            target = request.args.get("next", "")
            return redirect(target if target.startswith("/console/") else url_for("console.home"))
    status = 401 if problem else 200
    return render_template("console/login.html", problem=problem), status


@bp.post("/logout")
def logout() -> Any:
    session.clear()
    return redirect(url_for("console.login"))


@bp.get("/")
@signed_in
def home() -> str:
    settings: WebSettings = current_app.config["SETTINGS"]
    with get_pool(settings.database_url, API).connection(timeout=2.0) as conn:
        figures = read_overview(conn)
    return render_template("console/overview.html", overview=figures)


@bp.get("/review")
@signed_in
def review() -> str:
    settings: WebSettings = current_app.config["SETTINGS"]
    with get_pool(settings.database_url, API).connection(timeout=2.0) as conn:
        held = review_service.list_pending(conn)
        now = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
    return render_template(
        "console/review.html", held=held, now=now, done=session.pop("done", None)
    )


@bp.post("/review")
@signed_in
def decide() -> Any:
    """Confirm or dismiss one held number, audited with source operator and the operator."""
    settings: WebSettings = current_app.config["SETTINGS"]
    decision = request.form.get("decision", "")
    if decision not in review_service.DECISIONS:
        abort(400, "decision must be confirm or dismiss")
    profile, phone = request.form.get("profile", ""), request.form.get("phone", "")
    with get_pool(settings.database_url, API).connection(timeout=2.0) as conn:
        try:
            with conn.transaction():
                result = review_service.decide(
                    conn, profile, phone, decision, operator=session["operator"]
                )
            session["done"] = (
                f"{result.phone_number} on {result.messaging_profile_id}: {result.action}"
                f" ({result.previous_status} → {result.new_status}), audit seq {result.seq}"
            )
        except review_service.ReviewError as exc:
            session["done"] = str(exc)
    return redirect(url_for("console.review"))
