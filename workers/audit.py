"""The audit log: append-only rows chained by SHA-256 so removal or edits are provable.

Each row's hash covers its canonical content and the previous row's hash. ``seq`` is
gap-free: it is assigned under a transaction-scoped advisory lock together with the chain,
so concurrent workers append one after the other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import astuple, dataclass, fields
from datetime import UTC, datetime
from typing import Any

import psycopg

GENESIS_HASH = "0" * 64
AUDIT_CHAIN_LOCK_KEY = 0x6F7074_617564  # "opt" "aud"


@dataclass(frozen=True)
class AuditEntry:
    """One consent-relevant fact, before it gets its place in the chain."""

    event_id: str | None
    message_id: str | None
    occurred_at: datetime | None
    received_at: datetime | None
    messaging_profile_id: str
    phone_number: str
    our_number: str | None
    country: str | None
    action: str
    source: str
    text: str | None
    autoresponse_type: str | None
    previous_status: str | None
    new_status: str | None
    superseded: bool
    telnyx_block: bool


ENTRY_FIELDS = tuple(f.name for f in fields(AuditEntry))
# Column order of the table as the chain covers it.
CHAINED_FIELDS = ("seq", "recorded_at", *ENTRY_FIELDS)


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def row_hash(prev_hash: str, values: Sequence[Any]) -> str:
    """SHA-256 over the previous hash and the row's canonical JSON (CHAINED_FIELDS order)."""
    canonical = json.dumps(
        [_canonical_value(v) for v in values], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def append(conn: psycopg.Connection, entries: Sequence[AuditEntry]) -> list[int]:
    """Append entries to the chain inside the caller's transaction; return their seqs."""
    if not entries:
        return []
    # Held until the caller commits: the chain has one writer at a time.
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_CHAIN_LOCK_KEY,))
    row = conn.execute(
        "SELECT seq, hash, clock_timestamp() FROM audit_log ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    if row is None:
        last_seq, prev_hash = 0, GENESIS_HASH
        recorded_at = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
    else:
        last_seq, prev_hash, recorded_at = row
    seqs = []
    columns = ", ".join((*CHAINED_FIELDS, "prev_hash", "hash"))
    with conn.cursor().copy(f"COPY audit_log ({columns}) FROM STDIN") as copy:
        for offset, entry in enumerate(entries, start=1):
            seq = last_seq + offset
            values = (seq, recorded_at, *astuple(entry))
            digest = row_hash(prev_hash, values)
            copy.write_row((*values, prev_hash, digest))
            prev_hash = digest
            seqs.append(seq)
    return seqs


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    reason: str


def verify_rows(rows: Iterator[Sequence[Any]]) -> tuple[int, ChainBreak | None]:
    """Check rows of (CHAINED_FIELDS..., prev_hash, hash) in seq order.

    Returns how many rows were checked and the first break, if any.
    """
    expected_prev, expected_seq, count = GENESIS_HASH, 1, 0
    for row in rows:
        values, prev_hash, digest = row[: len(CHAINED_FIELDS)], row[-2], row[-1]
        seq = values[0]
        if seq != expected_seq:
            reason = (
                f"rows {expected_seq}..{seq - 1} are missing"
                if seq > expected_seq
                else f"sequence goes back: expected {expected_seq}"
            )
            return count, ChainBreak(seq, reason)
        if prev_hash != expected_prev:
            return count, ChainBreak(seq, "prev_hash does not match the previous row's hash")
        if row_hash(prev_hash, values) != digest:
            return count, ChainBreak(seq, "content does not match its hash (row was edited)")
        expected_prev, expected_seq, count = digest, seq + 1, count + 1
    return count, None


def verify(conn: psycopg.Connection) -> tuple[int, ChainBreak | None]:
    """Recompute the whole chain from the database, streaming with a server-side cursor."""
    columns = ", ".join((*CHAINED_FIELDS, "prev_hash", "hash"))
    with conn.transaction(), conn.cursor(name="audit_verify") as cursor:
        cursor.itersize = 5000
        cursor.execute(f"SELECT {columns} FROM audit_log ORDER BY seq")
        return verify_rows(iter(cursor))
