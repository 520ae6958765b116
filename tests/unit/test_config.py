"""Settings read from the environment: API tokens and their roles (spec §13)."""

from __future__ import annotations

from app.config import ApiToken, Role, Settings, parse_api_tokens


def test_api_tokens_carry_an_optional_role_prefix() -> None:
    tokens = parse_api_tokens(" read:r1 , write:w1,admin:a1,plain, owner:x ,,read:")
    assert [(t.secret, t.role) for t in tokens] == [
        ("r1", Role.READ),
        ("w1", Role.WRITE),
        ("a1", Role.ADMIN),
        ("plain", None),
        ("owner:x", None),  # not a role: the whole entry is the secret
        ("read:", None),
    ]


def test_each_role_includes_the_ones_before_it_and_no_role_keeps_reads_and_exports() -> None:
    read, write, admin, plain = (ApiToken("s", role) for role in (*Role, None))
    assert [t.may(Role.READ) for t in (read, write, admin, plain)] == [True] * 4
    assert [t.may(Role.WRITE) for t in (read, write, admin, plain)] == [False, True, True, False]
    assert [t.may(Role.ADMIN) for t in (read, write, admin, plain)] == [False, False, True, False]
    assert [t.may(Role.ADMIN, "exports") for t in (read, write, plain)] == [False, False, True]


def test_tokens_are_not_shown_in_the_settings_repr() -> None:
    settings = Settings.from_env({"API_TOKENS": "admin:very-secret"})
    assert "very-secret" not in repr(settings)
