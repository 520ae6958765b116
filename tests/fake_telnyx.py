"""A local stand-in for Telnyx's v2 API, following its documented contract.

Only what this service calls: messaging profiles' ``autoresp_configs`` (list with pagination
meta, create, get, update by PUT, delete answering "OK") and ``messaging_optouts``. Errors use
Telnyx's shape ``{"errors": [{"code", "title", "detail"}]}``; bearer auth is checked. Tests
can queue failures (429 with Retry-After, 5xx) to exercise retries.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

API_KEY = "KEY0123456789ABCDEF"


def _error(status: int, code: str, title: str, detail: str) -> tuple[Response, int]:
    return jsonify(errors=[{"code": code, "title": title, "detail": detail}]), status


class FakeTelnyx:
    def __init__(self) -> None:
        self.autoresp: dict[str, dict[str, dict[str, Any]]] = {}  # profile -> id -> config
        self.optouts: list[dict[str, Any]] = []
        self.failures: list[tuple[int, dict[str, str]]] = []
        self.requests: list[tuple[str, str]] = []
        self.app = self._build()

    def fail_next(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.failures.append((status, headers or {}))

    def _build(self) -> Flask:
        app = Flask("fake_telnyx")

        @app.before_request
        def check() -> Any:
            self.requests.append((request.method, request.path))
            if request.headers.get("Authorization") != f"Bearer {API_KEY}":
                return _error(
                    401, "10009", "Authentication failed", "The API key provided is invalid."
                )
            if self.failures:
                status, headers = self.failures.pop(0)
                response, _ = _error(status, str(status), "Injected failure", "try again")
                response.headers.update(headers)
                return response, status
            return None

        def page(items: list[dict[str, Any]]) -> Response:
            number = int(request.args.get("page[number]", 1))
            size = int(request.args.get("page[size]", 20))
            chunk = items[(number - 1) * size : number * size]
            return jsonify(
                data=chunk,
                meta={
                    "page_number": number,
                    "page_size": size,
                    "total_pages": max(1, math.ceil(len(items) / size)),
                    "total_results": len(items),
                },
            )

        def body_or_error() -> tuple[dict[str, Any] | None, Any]:
            body = request.get_json(silent=True)
            missing = [f for f in ("op", "keywords", "country_code") if not (body or {}).get(f)]
            if not isinstance(body, dict) or missing:
                return None, _error(
                    422,
                    "10015",
                    "Invalid parameter",
                    f"missing required field(s): {', '.join(missing)}",
                )
            if (
                body["op"] not in ("start", "stop", "info", "help")
                and not str(body["op"]).isidentifier()
            ):
                return None, _error(422, "10015", "Invalid parameter", "op is not valid")
            return body, None

        base = "/v2/messaging_profiles/<profile>/autoresp_configs"

        @app.get(base)
        def list_configs(profile: str) -> Response:
            return page(list(self.autoresp.get(profile, {}).values()))

        @app.post(base)
        def create(profile: str) -> Any:
            body, error = body_or_error()
            if error:
                return error
            assert body is not None
            now = datetime.now(UTC).isoformat()
            config = {
                "id": str(uuid.uuid4()),
                "op": body["op"],
                "keywords": body["keywords"],
                "resp_text": body.get("resp_text", ""),
                "country_code": body["country_code"],
                "created_at": now,
                "updated_at": now,
            }
            self.autoresp.setdefault(profile, {})[config["id"]] = config
            return jsonify(data=config)

        @app.get(base + "/<config_id>")
        def get(profile: str, config_id: str) -> Any:
            config = self.autoresp.get(profile, {}).get(config_id)
            return (
                jsonify(data=config)
                if config
                else _error(404, "10005", "Resource not found", config_id)
            )

        @app.put(base + "/<config_id>")
        def update(profile: str, config_id: str) -> Any:
            config = self.autoresp.get(profile, {}).get(config_id)
            if config is None:
                return _error(404, "10005", "Resource not found", config_id)
            body, error = body_or_error()
            if error:
                return error
            assert body is not None
            config.update(
                op=body["op"],
                keywords=body["keywords"],
                resp_text=body.get("resp_text", ""),
                country_code=body["country_code"],
                updated_at=datetime.now(UTC).isoformat(),
            )
            return jsonify(data=config)

        @app.delete(base + "/<config_id>")
        def delete(profile: str, config_id: str) -> Any:
            if self.autoresp.get(profile, {}).pop(config_id, None) is None:
                return _error(404, "10005", "Resource not found", config_id)
            return jsonify("OK")

        @app.get("/v2/messaging_optouts")
        def optouts() -> Response:
            items = self.optouts
            wanted = request.args.get("filter[messaging_profile_id]")
            if wanted:
                items = [o for o in items if o["messaging_profile_id"] == wanted]
            if request.args.get("created_at[gte]"):
                since = datetime.fromisoformat(request.args["created_at[gte]"])
                items = [o for o in items if datetime.fromisoformat(o["created_at"]) >= since]
            return page(items)

        return app


class RunningFake:
    def __init__(self, fake: FakeTelnyx) -> None:
        self.fake = fake
        self.server = make_server("127.0.0.1", 0, fake.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v2"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RunningFake:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def running() -> Iterator[RunningFake]:
    with RunningFake(FakeTelnyx()) as served:
        yield served
