"""The read API under /v1, behind bearer tokens (spec §7)."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    make_response,
    request,
)
from psycopg_pool import PoolTimeout

from app.config import ApiToken, Role, WebSettings
from app.consent.intake import IntakeError, parse_request
from app.consent.phones import InvalidPhoneNumber, to_e164, to_our_number
from app.consent.scopes import Scopes, ScopesSource
from app.consent.send_errors import ReportError, parse_report
from app.outbound.sender import Sender
from app.services import changes, exports, intake, lookup, outbound, send_errors
from app.store.db import API, get_pool
from app.telnyx.events import InvalidPayload, parse_timestamp
from app.web.downloads import export_download

bp = Blueprint("api", __name__, url_prefix="/v1")
T = TypeVar("T")
MAX_BATCH = 50_000


class BadRequest(Exception):
    pass


def _error(status: int, message: str) -> Response:
    response = make_response(jsonify(error=message), status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="optout-sync"'
    return response


@bp.before_request
def require_bearer_token() -> Response | None:
    settings: WebSettings = current_app.config["SETTINGS"]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _error(401, "missing bearer token: send Authorization: Bearer <token>")
    presented = token.strip().encode()
    # Compare against every token, always, in constant time.
    known = [t for t in settings.api_tokens if hmac.compare_digest(presented, t.secret.encode())]
    if not known:
        return _error(401, "invalid bearer token")
    g.api_token = known[0]
    return None


def requires(
    role: Role, call: str = ""
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """The role a call needs; a token without it gets 403 naming it (spec §13)."""

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Response:
            token: ApiToken = g.api_token
            if not token.may(role, call):
                return _error(403, f"this call needs a token with the {role} role")
            return view(*args, **kwargs)

        return checked

    return decorate


@bp.errorhandler(BadRequest)
def bad_request(exc: BadRequest) -> Response:
    return _error(400, str(exc))


@bp.errorhandler(psycopg.OperationalError)
@bp.errorhandler(PoolTimeout)
def database_unavailable(exc: Exception) -> Response:
    return _error(503, "database unavailable; retry later")


def _number(value: Any, name: str, read: Callable[[str], str] = to_e164) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{name} is required")
    try:
        return read(value)
    except InvalidPhoneNumber as exc:
        raise BadRequest(f"{name}: {exc}") from None


def _profile(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("messaging_profile_id is required")
    if "\x00" in value:  # PostgreSQL text cannot hold it; no profile id has one
        raise BadRequest("messaging_profile_id contains a NUL character")
    return value.strip()


def _connection() -> Any:
    settings: WebSettings = current_app.config["SETTINGS"]
    return get_pool(settings.database_url, API).connection(timeout=2.0)


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _subscriber_key(number: str) -> tuple[str, str]:
    """(messaging profile, E.164 number) of a /subscribers/{e164} path."""
    return _profile(request.args.get("messaging_profile_id")), _number(number, "phone number")


@bp.get("/subscribers/<path:number>")
@requires(Role.READ)
def get_subscriber(number: str) -> Response:
    phone = _number(number, "phone number")
    if request.args.get("messaging_profile_id") is None:  # every profile's state (spec §9)
        with _connection() as conn:
            everywhere = lookup.subscriber_everywhere(conn, phone)
        if everywhere is None:
            abort(_error(404, f"{phone} has never been seen"))
        return jsonify(_plain(everywhere))
    profile = _profile(request.args.get("messaging_profile_id"))
    with _connection() as conn:
        subscriber = lookup.get_subscriber(conn, profile, phone)
    if subscriber is None:
        abort(_error(404, f"{phone} has never been seen on messaging profile {profile}"))
    return jsonify(_plain(subscriber))


def _plain(value: Any) -> Any:
    """Times as ISO 8601 with offset, all the way down."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return _iso(value)


def _can_send_answer(answer: lookup.CanSend) -> dict[str, Any]:
    return dict(_plain(asdict(answer)))


def _scopes() -> Scopes:
    source: ScopesSource = current_app.extensions["optout_sync.scopes"]
    return source.current()


@bp.get("/subscribers/<path:number>/history")
@requires(Role.READ)
def get_history(number: str) -> Response:
    profile, phone = _subscriber_key(number)
    with _connection() as conn:
        rows = lookup.history(conn, profile, phone)
    return jsonify(events=[{k: _iso(v) for k, v in row.items()} for row in rows])


@bp.get("/can-send")
@requires(Role.READ)
def can_send_one() -> Response:
    profile = _profile(request.args.get("messaging_profile_id"))
    sender = _number(request.args.get("from"), "from", to_our_number)
    recipient = _number(request.args.get("to"), "to")
    with _connection() as conn:
        (answer,) = lookup.can_send(conn, profile, sender, [recipient], _scopes())
    return jsonify(_can_send_answer(answer))


@bp.post("/can-send")
@requires(Role.READ)
def can_send_many() -> Response:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object with messaging_profile_id, from and to")
    profile = _profile(body.get("messaging_profile_id"))
    sender = _number(body.get("from"), "from", to_our_number)
    recipients = body.get("to")
    if not isinstance(recipients, list) or not recipients:
        raise BadRequest("to must be a non-empty list of E.164 numbers")
    if len(recipients) > MAX_BATCH:
        raise BadRequest(f"to holds {len(recipients)} numbers; at most {MAX_BATCH} per call")
    numbers = [_number(value, f"to[{index}]") for index, value in enumerate(recipients)]
    with _connection() as conn:
        answers = lookup.can_send(conn, profile, sender, numbers, _scopes())
    return jsonify(results=[_can_send_answer(answer) for answer in answers])


def _time_arg(name: str) -> datetime | None:
    value = request.args.get(name)
    if not value:
        return None
    try:
        return parse_timestamp(value, name)
    except InvalidPayload as exc:
        raise BadRequest(str(exc)) from None


@bp.get("/exports/audit")
@requires(Role.ADMIN, call="exports")
def export_audit() -> Response:
    """The audit export of spec §6, streamed from PostgreSQL as it is produced."""
    try:
        export = exports.ExportRequest(
            kind="audit",
            format=request.args.get("format", "csv"),
            since=_time_arg("since"),
            until=_time_arg("until"),
            profile=_profile(profile)
            if (profile := request.args.get("messaging_profile_id"))
            else None,
            spreadsheet_safe=request.args.get("spreadsheet_safe", "") in ("1", "true", "yes"),
        )
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return export_download(export)


def _parse_body(parse: Callable[[Any, datetime, int], T]) -> T:
    """The JSON body as ``parse`` reads it, given the time now and the clock tolerance; a
    problem it names is a 400."""
    settings: WebSettings = current_app.config["SETTINGS"]
    try:
        return parse(
            request.get_json(silent=True), datetime.now(UTC), settings.webhook_tolerance_seconds
        )
    except (IntakeError, ReportError) as exc:
        raise BadRequest(str(exc)) from None


@bp.post("/consent")
@requires(Role.WRITE)
def record_consent() -> Response:
    """Consent from any channel (spec §10): all validated first, then applied in one
    transaction before the answer."""
    records = _parse_body(parse_request)
    with _connection() as conn, conn.transaction():
        results = intake.apply_records(conn, records)
    return jsonify(results=[asdict(result) for result in results])


@bp.get("/consent/evidence/<int:seq>")
@requires(Role.ADMIN)
def consent_evidence(seq: int) -> Response:
    """The evidence an audit row refers to, exactly as stored (its SHA-256 is in the row)."""
    with _connection() as conn:
        evidence = intake.evidence_of(conn, seq)
    if evidence is None:
        abort(_error(404, f"audit row {seq} has no evidence"))
    return Response(evidence, mimetype="application/json")


def _query_number(name: str, default: float, low: float, high: float, kind: type = int) -> Any:
    """A numeric query parameter within [low, high], or BadRequest naming it."""
    value = request.args.get(name)
    if value is None:
        return default
    try:
        number = kind(value)
    except ValueError:
        raise BadRequest(f"{name} must be {'an integer' if kind is int else 'a number'}") from None
    if not low <= number <= high:
        raise BadRequest(f"{name} must be between {low:g} and {high:g}, got {value}")
    return number


@bp.get("/changes")
@requires(Role.READ)
def list_changes() -> Response:
    """Audit rows after ``after``, in seq order; ``wait`` long-polls when none is newer."""
    after = _query_number("after", 0, 0, 2**63 - 1)
    limit = _query_number("limit", changes.DEFAULT_LIMIT, 1, changes.MAX_LIMIT)
    wait = _query_number("wait", 0, 0, changes.MAX_WAIT_SECONDS, kind=float)
    found = changes.wait_for_page(_connection, after, limit, wait)
    body = f'{{"changes":{found.changes_json},"next":{found.next}}}'
    return Response(body, mimetype="application/json")


@bp.post("/send-errors")
@requires(Role.WRITE)
def report_send_error() -> Response:
    """What a sender got back synchronously from Telnyx's send API (spec §12), applied as a
    message.finalized carrying the same error would be."""
    error = _parse_body(parse_report)
    with _connection() as conn, conn.transaction():
        result = send_errors.record(conn, error)
    return jsonify(asdict(result))


# --- outbound webhook endpoints (spec §11), role admin ----------------------------------------


@bp.get("/endpoints")
@requires(Role.ADMIN)
def list_endpoints() -> Response:
    with _connection() as conn:
        return jsonify(endpoints=_plain(outbound.list_endpoints(conn)))


@bp.post("/endpoints")
@requires(Role.ADMIN)
def add_endpoint() -> Response:
    """Add a receiver; the answer holds its signing secret, shown this once."""
    settings: WebSettings = current_app.config["SETTINGS"]
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("url"), str):
        raise BadRequest('body must be a JSON object with "url"')
    types = body.get("types")
    if types is not None and not (
        isinstance(types, list) and all(isinstance(t, str) for t in types)
    ):
        raise BadRequest("types must be a list of webhook types")
    profile = body.get("messaging_profile_id")
    if profile is not None:
        profile = _profile(profile)
    with _connection() as conn, conn.transaction():
        try:
            endpoint = outbound.add_endpoint(
                conn, body["url"], types, profile, settings.endpoints_allow_private
            )
        except ValueError as exc:  # an unsafe URL or an unknown type, named
            raise BadRequest(str(exc)) from None
    return make_response(jsonify(id=endpoint.id, secret=endpoint.secret), 201)


def _endpoint_call(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except outbound.EndpointError as exc:
        abort(_error(404, str(exc)))


@bp.delete("/endpoints/<endpoint_id>")
@requires(Role.ADMIN)
def remove_endpoint(endpoint_id: str) -> Response:
    with _connection() as conn, conn.transaction():
        _endpoint_call(lambda: outbound.remove_endpoint(conn, endpoint_id))
    return Response(status=204)


@bp.post("/endpoints/<endpoint_id>/test")
@requires(Role.ADMIN)
def test_endpoint(endpoint_id: str) -> Response:
    """Send a signed ping now; the answer says what the receiver answered."""
    settings: WebSettings = current_app.config["SETTINGS"]
    sender = Sender(settings.endpoints_allow_private)
    with _connection() as conn:
        answer = _endpoint_call(lambda: outbound.send_ping(conn, endpoint_id, sender))
    return jsonify(
        status=answer.status,
        error=answer.error,
        body=answer.body,
        milliseconds=round(answer.seconds * 1000),
    )


@bp.get("/endpoints/<endpoint_id>/attempts")
@requires(Role.ADMIN)
def endpoint_attempts(endpoint_id: str) -> Response:
    limit = _query_number("limit", 50, 1, 1000)
    with _connection() as conn:
        rows = _endpoint_call(lambda: outbound.attempts(conn, endpoint_id, limit))
    return jsonify(attempts=_plain(rows))


@bp.post("/endpoints/<endpoint_id>/replay")
@requires(Role.ADMIN)
def replay_endpoint(endpoint_id: str) -> Response:
    """Send again every webhook of audit rows recorded since ``since``, with the same ids."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest('body must be a JSON object with "since"')
    try:
        since = parse_timestamp(body.get("since"), "since")
    except InvalidPayload as exc:
        raise BadRequest(str(exc)) from None
    with _connection() as conn, conn.transaction():
        queued = _endpoint_call(lambda: outbound.replay(conn, endpoint_id, since))
    return jsonify(queued=queued)


# The API's description (OpenAPI 3.1), shipped beside this module; tests hold the real
# answers to it.
OPENAPI_DOCUMENT = Path(__file__).with_name("openapi.json")


@bp.get("/openapi.json")
@requires(Role.READ)
def openapi_document() -> Response:
    return Response(OPENAPI_DOCUMENT.read_bytes(), mimetype="application/json")
