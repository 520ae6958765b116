"""An export streamed as an HTTP download, for the API and the console alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from flask import Response, current_app, stream_with_context

from app.config import WebSettings
from app.services import exports
from app.store.db import API, get_pool

_CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def export_download(export: exports.ExportRequest) -> Response:
    """The export's bytes as PostgreSQL produces them, holding one connection while it runs."""
    settings: WebSettings = current_app.config["SETTINGS"]
    pool = get_pool(settings.database_url, API)
    conn = pool.getconn(timeout=2.0)  # held for the whole stream
    held = [conn]

    def give_back() -> None:
        if held:
            held.pop().rollback()  # a read-only transaction; end it before the pool has it
            pool.putconn(conn)

    def body() -> Iterator[bytes]:
        try:
            yield from exports.stream(conn, export)
        finally:
            give_back()  # as soon as the last byte is out

    filename = export.filename(datetime.now(UTC))
    response = Response(
        stream_with_context(body()),
        content_type=_CONTENT_TYPES[export.format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
    # A body never started (HEAD) runs no finally; the WSGI server closes every response.
    response.call_on_close(give_back)
    return response
