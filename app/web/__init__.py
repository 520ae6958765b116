"""The Flask application factory (Procfile `web` runs it under gunicorn)."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from app.config import Settings
from app.consent.scopes import ScopesSource
from app.services.group_commit import GroupCommitter
from app.store.db import RECEIVER, get_pool
from app.web import api, console, health, receiver
from app.web.handoff import Enqueuer


def create_app(
    settings: Settings | None = None, test_config: dict[str, Any] | None = None
) -> Flask:
    web_settings = (settings or Settings.from_env()).require_web()
    app = Flask(__name__)
    app.config["SETTINGS"] = web_settings
    app.config["MAX_CONTENT_LENGTH"] = receiver.MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # An API answers JSON, never an HTML redirect: "//" is a bad path, not one to fix up.
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    if test_config:
        app.config.update(test_config)
    app.extensions["optout_sync.enqueuer"] = Enqueuer(web_settings)
    app.extensions["optout_sync.scopes"] = ScopesSource(web_settings.consent_scopes)
    database_url = web_settings.database_url
    app.extensions["optout_sync.committer"] = GroupCommitter(
        lambda: get_pool(database_url, RECEIVER), receiver.POOL_WAIT_SECONDS
    )
    app.register_blueprint(receiver.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    console.install(app, web_settings)

    @app.errorhandler(HTTPException)
    def http_error_as_json(exc: HTTPException) -> Any:
        # Every error answer is JSON naming the problem, including Flask's own 404/405/413.
        response = exc.get_response()
        response.data = jsonify(error=exc.description or exc.name).get_data()
        response.content_type = "application/json"
        return response

    return app
