"""A small client for the parts of Telnyx's v2 API this service calls (stdlib only).

Retries 429 (honouring Retry-After) and 5xx a few times; every other failure is a
TelnyxApiError whose message is one line naming the status and Telnyx's own error text.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

RETRYABLE = {429, 500, 502, 503, 504}


class TelnyxApiError(Exception):
    def __init__(self, status: int | None, message: str) -> None:
        self.status = status
        super().__init__(message)


def _error_text(status: int, body: bytes) -> str:
    try:
        errors = json.loads(body).get("errors") or []
        details = "; ".join(
            " — ".join(str(e[k]) for k in ("code", "title", "detail") if e.get(k)) for e in errors
        )
    except (ValueError, AttributeError):
        details = body.decode(errors="replace")[:200]
    hint = " (check TELNYX_API_KEY)" if status == 401 else ""
    return f"Telnyx API answered {status}{hint}: {details or 'no detail'}"


class TelnyxClient:
    def __init__(
        self,
        api_key: str,
        base_url: str = "https://api.telnyx.com/v2",
        *,
        attempts: int = 4,
        timeout: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.attempts = attempts
        self.timeout = timeout
        self.sleep = sleep

    def request(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(1, self.attempts + 1):
            request = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
                    return json.loads(raw) if raw else None
            except urllib.error.HTTPError as exc:
                raw = exc.read()
                if exc.code in RETRYABLE and attempt < self.attempts:
                    self.sleep(self._delay(exc, attempt))
                    continue
                raise TelnyxApiError(exc.code, _error_text(exc.code, raw)) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt < self.attempts:
                    self.sleep(self._delay(None, attempt))
                    continue
                reason = getattr(exc, "reason", exc)
                raise TelnyxApiError(None, f"cannot reach {self.base_url}: {reason}") from None
        raise AssertionError("unreachable")

    @staticmethod
    def _delay(error: urllib.error.HTTPError | None, attempt: int) -> float:
        retry_after = error.headers.get("Retry-After") if error is not None else None
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), 60.0)
        return min(0.5 * 2 ** (attempt - 1), 8.0)

    def paginate(
        self, path: str, params: dict[str, Any] | None = None, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list (``meta.total_pages``), page after page."""
        page = 1
        while True:
            answer = self.request(
                "GET",
                path,
                params={**(params or {}), "page[number]": page, "page[size]": page_size},
            )
            yield from answer.get("data") or []
            meta = answer.get("meta") or {}
            if page >= int(meta.get("total_pages") or 1):
                return
            page += 1

    # --- autoresp_configs ---------------------------------------------------------------------

    def _autoresp_path(self, profile_id: str, config_id: str | None = None) -> str:
        path = f"/messaging_profiles/{urllib.parse.quote(profile_id, safe='')}/autoresp_configs"
        return path + (f"/{urllib.parse.quote(config_id, safe='')}" if config_id else "")

    def list_autoresp_configs(self, profile_id: str) -> list[dict[str, Any]]:
        return list(self.paginate(self._autoresp_path(profile_id)))

    def create_autoresp_config(self, profile_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.request("POST", self._autoresp_path(profile_id), body)["data"])

    def update_autoresp_config(
        self, profile_id: str, config_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        return dict(self.request("PUT", self._autoresp_path(profile_id, config_id), body)["data"])

    def delete_autoresp_config(self, profile_id: str, config_id: str) -> None:
        self.request("DELETE", self._autoresp_path(profile_id, config_id))

    # --- messaging_optouts -------------------------------------------------------------------

    def list_optouts(
        self, profile_id: str | None = None, since: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every opt-out Telnyx holds (``to`` is the subscriber), page after page."""
        params: dict[str, Any] = {}
        if profile_id:
            params["filter[messaging_profile_id]"] = profile_id
        if since:
            params["created_at[gte]"] = since
        return self.paginate("/messaging_optouts", params)
