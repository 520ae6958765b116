"""Consent scopes as a pure policy: who reaches whom, and what blocks a send (spec §9)."""

from __future__ import annotations

from datetime import UTC, datetime

from app.consent.scopes import ProfileConsent, Scopes, blocks

T9, T10 = datetime(2026, 1, 1, 9, tzinfo=UTC), datetime(2026, 1, 1, 10, tzinfo=UTC)


def test_reach_is_the_profile_itself_its_groups_or_every_profile() -> None:
    scopes = Scopes.parse('{"marketing": ["M1", "M2"], "alerts": ["A1"]}')
    assert scopes.reach("M1") == {"M1", "M2"}
    assert scopes.reach("A1") == {"A1"}
    assert scopes.reach("other") == {"other"}
    assert Scopes.parse('{"all": ["*"]}').reach("anything") is None
    assert Scopes.parse("").reach("P") == {"P"}


def test_an_opt_out_elsewhere_blocks_until_a_newer_opt_in_here() -> None:
    scopes = Scopes.parse('{"all": ["*"]}')
    elsewhere = ProfileConsent("P1", "opted_out", T9, None, None)
    assert [b.messaging_profile_id for b in blocks("P2", [elsewhere], scopes)] == ["P1"]
    reopened = ProfileConsent("P2", "opted_in", None, T10, None)
    assert blocks("P2", [elsewhere, reopened], scopes) == []
    older = ProfileConsent("P2", "opted_in", None, T9.replace(hour=8), None)
    assert len(blocks("P2", [elsewhere, older], scopes)) == 1


def test_a_review_hold_here_blocks_with_its_own_reason() -> None:
    held = ProfileConsent("P", "review", None, None, T9)
    assert [(b.reason, b.occurred_at) for b in blocks("P", [held], Scopes())] == [
        ("pending_review", T9)
    ]
