"""What the console does besides review decisions: failed and invalid events with their
replay, and the record of what each operator did."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from app.store import inbox, operator_actions

ReplayRefused = inbox.ReplayRefused


@dataclass(frozen=True)
class ProblemEvents:
    failed: list[dict[str, Any]]  # newest first
    invalid: list[dict[str, Any]]


def problem_events(conn: psycopg.Connection, limit: int) -> ProblemEvents:
    """Events that wait for a person: failed (the worker gave up) and invalid (unreadable)."""
    return ProblemEvents(
        inbox.list_events(conn, inbox.FAILED, limit), inbox.list_events(conn, inbox.INVALID, limit)
    )


def replay_event(conn: psycopg.Connection, event_id: str, operator: str) -> None:
    """Queue a failed or invalid event again, recorded with the operator who asked."""
    inbox.replay_event(conn, event_id)
    operator_actions.record(conn, operator, "replay_event", event_id)


def record_action(
    conn: psycopg.Connection, operator: str, action: str, target: str = "", detail: str = ""
) -> None:
    operator_actions.record(conn, operator, action, target, detail)
