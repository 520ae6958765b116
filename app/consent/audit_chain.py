"""The audit chain's rules, pure: what a row holds, how it is hashed, and how a chain of rows
is checked. Each row's SHA-256 covers its canonical content and the previous row's hash, so
an edit, a removal or a row put out of place is provable (store.audit_log writes and reads
the table)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

import orjson

GENESIS_HASH = "0" * 64


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
    # Consent from outside SMS (spec §10): how it came, and the SHA-256 of its evidence.
    channel: str | None = None
    evidence_sha256: str | None = None


ENTRY_FIELDS = tuple(f.name for f in fields(AuditEntry))
# Column order of the table as the chain covers it.
CHAINED_FIELDS = ("seq", "recorded_at", *ENTRY_FIELDS)
# dataclasses.astuple deep-copies every value; the entry is frozen, so plain reads suffice.
entry_values = attrgetter(*ENTRY_FIELDS)


def canonical_json(values: Sequence[Any]) -> bytes:
    """A row as compact UTF-8 JSON, times as UTC ISO 8601 with microseconds.

    The chain's format is ``json.dumps(row, ensure_ascii=False, separators=(",", ":"))``;
    orjson writes exactly those bytes (tests hold it to that), several times faster.
    """
    return orjson.dumps([canonical_time(v) if type(v) is datetime else v for v in values])


def canonical_time(value: datetime) -> str:
    """``value.astimezone(UTC).isoformat(timespec="microseconds")``, in half the time: the
    keyword costs more than the formatting, and isoformat() omits only a zero fraction."""
    utc = value.astimezone(UTC)
    text = utc.isoformat()
    return text if utc.microsecond else f"{text[:19]}.000000{text[19:]}"


# The fields added after the first version, last in CHAINED_FIELDS. A row without any of
# them is hashed without them, as every row was before they existed, so old rows verify.
_LATER_FIELDS = 2


def row_hash(prev_hash: str, values: Sequence[Any]) -> str:
    """SHA-256 over the previous hash and the row's canonical JSON (CHAINED_FIELDS order)."""
    if all(value is None for value in values[-_LATER_FIELDS:]):
        values = values[:-_LATER_FIELDS]
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical_json(values)).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    reason: str


@dataclass(frozen=True)
class ChainHead:
    """The last row of an intact chain: publish it somewhere else to anchor the chain, since
    a superuser could rewrite every row after an edit, but not a hash kept elsewhere."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


@dataclass(frozen=True)
class ClockStep:
    """A row recorded at an earlier time than the row before it. Rows are chained in seq
    order, so this is the database clock set back (NTP, a VM restored or migrated), not
    tampering: the hashes and links say whether anything was altered."""

    seq: int
    recorded_at: datetime
    previous_recorded_at: datetime

    def __str__(self) -> str:
        return (
            f"seq {self.seq} was recorded at {self.recorded_at.isoformat()}, before seq"
            f" {self.seq - 1} ({self.previous_recorded_at.isoformat()}): the clock stepped back"
        )


@dataclass(frozen=True)
class ChainReport:
    intact_rows: int
    broken: ChainBreak | None
    head: ChainHead | None  # None when broken or empty
    clock_steps: list[ClockStep]


def verify_rows(rows: Iterator[Sequence[Any]], anchor: ChainHead | None = None) -> ChainReport:
    """Check rows of (CHAINED_FIELDS..., prev_hash, hash) in seq order: the intact rows, the
    first break if any, the head of the chain, and where recorded_at steps back."""
    expected_prev, expected_seq, count = GENESIS_HASH, 1, 0
    previous_recorded: Any = None
    steps: list[ClockStep] = []
    for row in rows:
        values, prev_hash, digest = row[: len(CHAINED_FIELDS)], row[-2], row[-1]
        problem = _row_problem(values, prev_hash, digest, expected_seq, expected_prev, anchor)
        if problem:
            return ChainReport(count, ChainBreak(values[0], problem), None, steps)
        if previous_recorded is not None and values[1] < previous_recorded:
            steps.append(ClockStep(values[0], values[1], previous_recorded))
        expected_prev, expected_seq, count = digest, values[0] + 1, count + 1
        previous_recorded = values[1]
    if anchor is not None and anchor.seq >= expected_seq:
        removed = ChainBreak(anchor.seq, "the anchored row no longer exists (removed)")
        return ChainReport(count, removed, None, steps)
    head = ChainHead(expected_seq - 1, expected_prev) if count else None
    return ChainReport(count, None, head, steps)


def _row_problem(
    values: Sequence[Any],
    prev_hash: str,
    digest: str,
    expected_seq: int,
    expected_prev: str,
    anchor: ChainHead | None,
) -> str | None:
    seq = values[0]
    if seq > expected_seq:
        return f"rows {expected_seq}..{seq - 1} are missing"
    if seq < expected_seq:
        return f"sequence goes back: expected {expected_seq}"
    if prev_hash != expected_prev:
        return "prev_hash does not match the previous row's hash"
    if row_hash(prev_hash, values) != digest:
        return "content does not match its hash (row was edited)"
    if anchor is not None and seq == anchor.seq and digest != anchor.hash:
        return "hash differs from the anchor kept elsewhere (the chain was rewritten)"
    return None
