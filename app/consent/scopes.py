"""Consent scopes (spec §9): which opt-outs block which sends, a policy applied at read time.

Facts stay per (messaging profile, number). ``CONSENT_SCOPES`` names groups of profiles,
``{"marketing": ["P1", "P2"], "alerts": ["P3"]}``, where ``"*"`` stands for every profile: an
opt-out on a profile blocks every profile that shares a group with it, until a newer opt-in
on the profile asked about. Revoke-all (FCC 24-24, from 2027-01-31) is ``{"all": ["*"]}``.
Without groups each profile is its own scope, as Telnyx's block rules are.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from app.consent.values import Status

log = logging.getLogger(__name__)

EVERY_PROFILE = "*"


def _inline(text: str) -> bool:
    """Whether CONSENT_SCOPES holds the JSON itself rather than a file's path."""
    return text.startswith(("{", "["))


class ScopesError(ValueError):
    """CONSENT_SCOPES cannot be used; the message says why in one line."""


@dataclass(frozen=True)
class Scopes:
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str) -> Scopes:
        """Inline JSON, or the path of a JSON file; empty means no groups."""
        text = value.strip()
        if not text:
            return cls()
        if not _inline(text):
            try:
                text = Path(text).read_text(encoding="utf-8")
            except OSError as exc:
                raise ScopesError(f"cannot read {value}: {exc.strerror}") from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScopesError(f"is not JSON: {exc}") from None
        if not isinstance(document, dict):
            raise ScopesError('must be an object of named groups: {"name": ["profile", …]}')
        groups = {}
        for name, members in document.items():
            if not isinstance(members, list) or not all(
                isinstance(m, str) and m.strip() for m in members
            ):
                raise ScopesError(f"group {name!r} must be a list of messaging profile ids")
            groups[name] = frozenset(m.strip() for m in members)
        return cls(groups)

    def _containing(self, profile: str) -> list[str]:
        return sorted(
            name
            for name, members in self.groups.items()
            if profile in members or EVERY_PROFILE in members
        )

    def reach(self, profile: str) -> frozenset[str] | None:
        """The profiles whose opt-outs block ``profile``; None when every profile's do."""
        reached = {profile}
        for name in self._containing(profile):
            if EVERY_PROFILE in self.groups[name]:
                return None
            reached |= self.groups[name]
        return frozenset(reached)

    def shared(self, profile: str, other: str) -> str | None:
        """The first group ``profile`` and ``other`` share, if any."""
        theirs = self._containing(other)
        return next((name for name in self._containing(profile) if name in theirs), None)


class ScopesSource:
    """CONSENT_SCOPES as of each request: a file is read again when it changes, so a new
    grouping applies at once; a change that cannot be read keeps the last good one."""

    def __init__(self, value: str) -> None:
        text = value.strip()
        self._path = Path(text) if text and not _inline(text) else None
        self._mtime = self._modified()
        self._scopes = Scopes.parse(value)  # at start, a bad value is an error

    def _modified(self) -> float | None:
        try:
            return self._path.stat().st_mtime if self._path else None
        except OSError:
            return None

    def current(self) -> Scopes:
        modified = self._modified()
        if self._path is not None and modified != self._mtime:
            self._mtime = modified
            try:
                self._scopes = Scopes.parse(str(self._path))
            except ScopesError as exc:
                log.error("CONSENT_SCOPES %s; still using the groups read before", exc)
        return self._scopes


@dataclass(frozen=True)
class ProfileConsent:
    """One profile's consent facts about a number, as can-send needs them."""

    messaging_profile_id: str
    status: str
    last_opt_out_at: datetime | None
    last_opt_in_at: datetime | None
    review_occurred_at: datetime | None


@dataclass(frozen=True)
class Block:
    reason: str  # opted_out | pending_review | carrier_block: can-send's reason codes
    messaging_profile_id: str | None
    occurred_at: datetime | None
    scope: str | None


OPTED_OUT, PENDING_REVIEW, CARRIER_BLOCK = "opted_out", "pending_review", "carrier_block"


def blocks(profile: str, facts: Sequence[ProfileConsent], scopes: Scopes) -> list[Block]:
    """Why ``profile`` may not text a number, from that number's facts on the profiles that
    reach ``profile``: the profile's own opt-out or review hold, and any opt-out elsewhere
    in its scopes newer than its own latest opt-in."""
    own = next((f for f in facts if f.messaging_profile_id == profile), None)
    opted_in_at = own.last_opt_in_at if own else None
    found = []
    for fact in facts:
        if fact.messaging_profile_id == profile:
            # Its own register already ordered its STOPs and STARTs (ties by event id).
            if fact.status == Status.OPTED_OUT:
                scope = scopes.shared(profile, profile)
                found.append(Block(OPTED_OUT, profile, fact.last_opt_out_at, scope))
        elif fact.last_opt_out_at and (opted_in_at is None or fact.last_opt_out_at > opted_in_at):
            scope = scopes.shared(profile, fact.messaging_profile_id)
            found.append(Block(OPTED_OUT, fact.messaging_profile_id, fact.last_opt_out_at, scope))
    if own is not None and own.status == Status.REVIEW:
        found.append(Block(PENDING_REVIEW, profile, own.review_occurred_at, None))
    return found
