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
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
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
from app.consent.phones import InvalidPhoneNumber, to_e164
from app.outbound.sender import Sender
from app.services import console as console_service
from app.services import exports, lookup, outbound
from app.services import review as review_service
from app.services.overview import overview as read_overview
from app.store.db import API, get_pool
from app.web.chart import bar_chart
from app.web.downloads import export_download
from app.web.handoff import Enqueuer

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


def _connection() -> Any:
    settings: WebSettings = current_app.config["SETTINGS"]
    return get_pool(settings.database_url, API).connection(timeout=2.0)


def _tell(message: str) -> None:
    """A line for the next page to show: the outcome of the action that led there."""
    session["notice"] = message


def _audited(action: str, target: str = "", detail: str = "") -> None:
    """Keep what the signed-in operator did, with their name, in its own transaction."""
    with _connection() as conn, conn.transaction():
        console_service.record_action(conn, session["operator"], action, target, detail)


@bp.app_context_processor
def _templates() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "duration": duration}


def duration(seconds: float | None) -> str:
    """A span of time as a person reads it: 45 ms, 3.2 s, 5 min 3 s, 2 h 5 min, 3 d 4 h."""
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole >= 86400:
        return f"{whole // 86400} d {whole % 86400 // 3600} h"
    if whole >= 3600:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 60} min {whole % 60} s"


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
            _audited("login")
            target = request.args.get("next", "")
            return redirect(target if target.startswith("/console/") else url_for("console.home"))
    status = 401 if problem else 200
    return render_template("console/login.html", problem=problem), status


@bp.post("/logout")
def logout() -> Any:
    if "operator" in session:
        _audited("logout")
    session.clear()
    return redirect(url_for("console.login"))


@bp.get("/")
@signed_in
def home() -> str:
    with _connection() as conn:
        figures = read_overview(conn)
    return render_template(
        "console/overview.html", overview=figures, chart=bar_chart(figures.opt_outs_per_day)
    )


@bp.get("/review")
@signed_in
def review() -> str:
    with _connection() as conn:
        held = review_service.list_pending(conn)
        now = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    return render_template("console/review.html", held=held, now=now)


@bp.post("/review")
@signed_in
def decide() -> Any:
    """Confirm or dismiss one held number, audited with source operator and the operator."""
    decision = request.form.get("decision", "")
    if decision not in review_service.DECISIONS:
        abort(400, "decision must be confirm or dismiss")
    profile, phone = request.form.get("profile", ""), request.form.get("phone", "")
    with _connection() as conn:
        try:
            with conn.transaction():
                result = review_service.decide(
                    conn, profile, phone, decision, operator=session["operator"]
                )
            _tell(
                f"{result.phone_number} on {result.messaging_profile_id}: {result.action}"
                f" ({result.previous_status} → {result.new_status}), audit seq {result.seq}"
            )
        except review_service.ReviewError as exc:
            _tell(str(exc))
    return redirect(url_for("console.review"))


@bp.get("/subscribers")
@signed_in
def subscriber() -> Any:
    """One number: its state on each profile, its carrier blocks and every audit row."""
    asked = request.args.get("phone", "").strip()
    found, history, problem, status = None, [], None, 200
    if asked:
        try:
            phone = to_e164(asked)
        except InvalidPhoneNumber as exc:
            problem, status = str(exc), 400
        else:
            with _connection() as conn:
                found = lookup.subscriber_everywhere(conn, phone)
                history = lookup.history(conn, None, phone)
            if found is None:
                problem = f"{phone} has never been seen."
    page = render_template(
        "console/subscriber.html", asked=asked, found=found, history=history, problem=problem
    )
    return page, status


EVENTS_SHOWN = 100


@bp.get("/events")
@signed_in
def events() -> str:
    with _connection() as conn:
        found = console_service.problem_events(conn, EVENTS_SHOWN)
    return render_template("console/events.html", failed=found.failed, invalid=found.invalid)


@bp.post("/events/replay")
@signed_in
def replay_event() -> Any:
    event_id = request.form.get("event_id", "")
    with _connection() as conn:
        try:
            with conn.transaction():
                console_service.replay_event(conn, event_id, session["operator"])
        except console_service.ReplayRefused as exc:
            _tell(str(exc))
            return redirect(url_for("console.events"))
    enqueuer: Enqueuer = current_app.extensions["optout_sync.enqueuer"]
    enqueuer.request_apply()
    _tell(f"{event_id} is queued again; the worker applies it in a moment.")
    return redirect(url_for("console.events"))


@bp.get("/exports")
@signed_in
def exports_page() -> str:
    return render_template("console/exports.html", kinds=exports.KINDS)


def _day(name: str, days_after: int = 0) -> datetime | None:
    """A date field (YYYY-MM-DD) as the start of that UTC day, plus some days."""
    value = request.args.get(name, "")
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC) + timedelta(days=days_after)
    except ValueError:
        abort(400, f"{name} must be a date, YYYY-MM-DD; got {value!r}")


@bp.get("/exports/download")
@signed_in
def download_export() -> Response:
    """The export between two dates, both included (UTC days), as a download."""
    try:
        export = exports.ExportRequest(
            kind=request.args.get("kind", "audit"),
            format=request.args.get("format", "csv"),
            since=_day("since"),
            until=_day("until", days_after=1),
            profile=request.args.get("profile", "").strip() or None,
            spreadsheet_safe=request.args.get("spreadsheet_safe") == "yes",
        )
    except ValueError as exc:
        abort(400, str(exc))
    span = f"{request.args.get('since') or 'start'}..{request.args.get('until') or 'now'}"
    _audited("export", export.kind, f"{export.format} {span} profile={export.profile or 'all'}")
    return export_download(export)


ATTEMPTS_SHOWN = 5


@bp.get("/endpoints")
@signed_in
def endpoints_page() -> str:
    """Each receiver's health and its latest attempts."""
    with _connection() as conn:
        receivers = outbound.list_endpoints(conn)
        attempts = {e["id"]: outbound.attempts(conn, e["id"], ATTEMPTS_SHOWN) for e in receivers}
    return render_template("console/endpoints.html", receivers=receivers, attempts=attempts)


@bp.post("/endpoints/test")
@signed_in
def test_endpoint() -> Any:
    """Send a signed ping now and say what the receiver answered."""
    settings: WebSettings = current_app.config["SETTINGS"]
    endpoint_id = request.form.get("endpoint_id", "")
    with _connection() as conn:
        try:
            answer = outbound.send_ping(conn, endpoint_id, Sender(settings.endpoints_allow_private))
        except outbound.EndpointError as exc:
            _tell(str(exc))
            return redirect(url_for("console.endpoints_page"))
    outcome = f"HTTP {answer.status}" if answer.status else f"no answer: {answer.error}"
    _audited("test_endpoint", endpoint_id, outcome)
    _tell(f"Test ping to {endpoint_id}: {outcome} in {answer.seconds * 1000:.0f} ms.")
    return redirect(url_for("console.endpoints_page"))
