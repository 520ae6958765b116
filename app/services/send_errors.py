"""Send errors a sender reports (POST /v1/send-errors, spec §12), applied as the worker
applies the ones Telnyx's webhooks carry; and the drift report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from app.consent.rules import is_drift
from app.consent.send_errors import consent_events
from app.services.apply_events import Rules, apply_classified
from app.store import audit_log
from app.telnyx.events import SendError

OPTED_OUT, HELD, SUPERSEDED, IGNORED, DUPLICATE = (
    "opted_out",
    "held_for_review",
    "superseded",
    "ignored",
    "duplicate",
)


@dataclass(frozen=True)
class ReportResult:
    result: str  # opted_out | held_for_review | superseded | ignored | duplicate
    seq: int | None
    drift: bool  # an opt-out we did not hold


def record(conn: psycopg.Connection, error: SendError) -> ReportResult:
    """Apply one reported send error inside the caller's transaction."""
    earlier = audit_log.first_results(conn, [error.event_id])
    if error.event_id in earlier:
        return ReportResult(DUPLICATE, earlier[error.event_id][0], False)
    events = consent_events([error], None)
    if not events:
        return ReportResult(IGNORED, None, False)
    entries, _ = apply_classified(conn, [(0, event) for event in events], Rules())
    seqs = audit_log.append(conn, entries)
    first = entries[0]
    applied = OPTED_OUT if first.action == "opt_out" else HELD
    return ReportResult(SUPERSEDED if first.superseded else applied, seqs[0], is_drift(first))


def drift(
    conn: psycopg.Connection, since: datetime | None, profile: str | None
) -> list[dict[str, Any]]:
    """Opt-outs learnt from Telnyx for numbers we held as textable, oldest first."""
    return audit_log.drift_rows(conn, since, profile)
