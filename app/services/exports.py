"""Compliance exports streamed straight from PostgreSQL with COPY (constant memory).

PostgreSQL formats every row (RFC 4180 CSV with a header, or one JSON object per line), so
Python only passes bytes along: an export runs at close to the speed of a raw COPY.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

FORMATS = ("csv", "jsonl")
KINDS = ("audit", "suppression", "carrier-blocks")

# Spreadsheets run cells starting with = + - @ (and tab/CR) as formulas; every E.164 number
# starts with +. Safe mode prefixes such cells with a single quote, as OWASP recommends.
_FORMULA_START = r"^[=+\-@\t\r]"


def _iso(column: str) -> str:
    # ISO 8601 with an explicit offset, always UTC, microseconds: the same in CSV and JSONL.
    return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"


@dataclass(frozen=True)
class Column:
    name: str
    expression: str
    kind: str = "text"  # text | time | number | boolean


AUDIT_COLUMNS: Sequence[Column] = (
    Column("seq", "seq", "number"),
    Column("recorded_at", "recorded_at", "time"),
    Column("event_id", "event_id"),
    Column("message_id", "message_id"),
    Column("occurred_at", "occurred_at", "time"),
    Column("received_at", "received_at", "time"),
    Column("messaging_profile_id", "messaging_profile_id"),
    Column("phone_number", "phone_number"),
    Column("our_number", "our_number"),
    Column("country", "country"),
    Column("action", "action"),
    Column("source", "source"),
    Column("text", "text"),
    Column("autoresponse_type", "autoresponse_type"),
    Column("previous_status", "previous_status"),
    Column("new_status", "new_status"),
    Column("superseded", "superseded", "boolean"),
    Column("telnyx_block", "telnyx_block", "boolean"),
    Column(
        "honored_seconds",
        "round(extract(epoch FROM recorded_at - received_at)::numeric, 3)::float8",
        "number",
    ),
    Column("prev_hash", "prev_hash"),
    Column("hash", "hash"),
    # Added by the second version (spec §10), at the end: existing columns keep their order.
    Column("channel", "channel"),
    Column("evidence_sha256", "evidence_sha256"),
)
SUPPRESSION_COLUMNS: Sequence[Column] = (
    Column("phone_number", "phone_number"),
    Column("messaging_profile_id", "messaging_profile_id"),
    Column("status", "status"),
    Column("opted_out_at", "last_occurred_at", "time"),
    Column("last_event_id", "last_event_id"),
    Column("updated_at", "updated_at", "time"),
)
CARRIER_BLOCK_COLUMNS: Sequence[Column] = (
    Column("toll_free_number", "toll_free_number"),
    Column("phone_number", "phone_number"),
    Column("blocked", "blocked", "boolean"),
    Column("since", "since", "time"),
    Column("messaging_profile_id", "messaging_profile_id"),
    Column("last_event_id", "last_event_id"),
)

# kind -> (table, columns, the time column --since/--until filter on, order)
_KINDS = {
    "audit": ("audit_log", AUDIT_COLUMNS, "recorded_at", "seq"),
    "suppression": (
        "subscribers",
        SUPPRESSION_COLUMNS,
        "last_occurred_at",
        "messaging_profile_id, phone_number",
    ),
    "carrier-blocks": (
        "carrier_blocks",
        CARRIER_BLOCK_COLUMNS,
        "since",
        "toll_free_number, phone_number",
    ),
}
_ALWAYS = {
    "audit": "true",
    "suppression": "status = 'opted_out'",
    "carrier-blocks": "blocked AND last_event_id <> ''",
}


@dataclass(frozen=True)
class ExportRequest:
    kind: str = "audit"
    format: str = "csv"
    since: datetime | None = None
    until: datetime | None = None
    profile: str | None = None
    spreadsheet_safe: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown export {self.kind!r}; choose {', '.join(KINDS)}")
        if self.format not in FORMATS:
            raise ValueError(f"format must be csv or jsonl, got {self.format!r}")
        if self.since and self.until and self.since > self.until:
            raise ValueError("since is after until")

    @property
    def columns(self) -> Sequence[Column]:
        return _KINDS[self.kind][1]

    def filename(self, now: datetime) -> str:
        return f"optout-sync-{self.kind}-{now:%Y%m%dT%H%M%SZ}.{self.format}"


def _select_expression(column: Column, safe: bool, fmt: str) -> str:
    if column.kind == "time":
        return _iso(column.expression)
    if column.kind == "boolean" and fmt == "csv":
        return f"{column.expression}::text"  # true/false rather than PostgreSQL's t/f
    if column.kind == "text" and safe:
        value = column.expression
        return f"CASE WHEN {value} ~ '{_FORMULA_START}' THEN '''' || {value} ELSE {value} END"
    return column.expression


def audit_select(fmt: str = "jsonl") -> str:
    """The audit export's columns as a SELECT list, formatted as the export formats them."""
    return ", ".join(f'{_select_expression(c, False, fmt)} AS "{c.name}"' for c in AUDIT_COLUMNS)


def build_query(request: ExportRequest) -> tuple[sql.Composed, dict[str, object]]:
    """The SELECT of an export (filters bound as parameters)."""
    table, columns, time_column, order = _KINDS[request.kind]
    safe = request.spreadsheet_safe and request.format == "csv"
    select = ", ".join(
        f'{_select_expression(c, safe, request.format)} AS "{c.name}"' for c in columns
    )
    where = [_ALWAYS[request.kind]]
    params: dict[str, object] = {}
    if request.since:
        where.append(f"{time_column} >= %(since)s")
        params["since"] = request.since
    if request.until:
        where.append(f"{time_column} < %(until)s")
        params["until"] = request.until
    if request.profile:
        where.append("messaging_profile_id = %(profile)s")
        params["profile"] = request.profile
    text = f"SELECT {select} FROM {table} WHERE {' AND '.join(where)} ORDER BY {order}"
    return sql.SQL(text).format(), params


def copy_statement(request: ExportRequest) -> tuple[sql.Composed, dict[str, object]]:
    query, params = build_query(request)
    if request.format == "csv":
        return sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER)").format(query), params
    # One JSON object per line. CSV mode with quote/delimiter bytes that JSON text never holds
    # (row_to_json escapes control characters) passes each object through untouched.
    rows = sql.SQL("SELECT row_to_json(r)::text FROM ({}) r").format(query)
    return (
        sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')").format(
            rows
        ),
        params,
    )


def count_rows(conn: psycopg.Connection, request: ExportRequest) -> int:
    query, params = build_query(request)
    row = conn.execute(sql.SQL("SELECT count(*) FROM ({}) r").format(query), params).fetchone()
    return int(row[0]) if row else 0


def stream(conn: psycopg.Connection, request: ExportRequest) -> Iterator[bytes]:
    """The export's bytes, chunk by chunk, as PostgreSQL produces them."""
    statement, params = copy_statement(request)
    # Exports run as long as they take; the pool's statement limit is for quick requests.
    conn.execute("SET LOCAL statement_timeout = 0")
    with conn.cursor() as cursor, cursor.copy(statement, params) as copy:
        for chunk in copy:
            yield bytes(chunk)
