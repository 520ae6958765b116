"""The repository stands on its own: a clone with nothing beside it has all it needs."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import EXAMPLES, ROOT

# Spelled in two pieces so that this file does not match itself.
OUTSIDE = ".." + "/shared"


def tracked_files() -> list[str]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    return [name for name in listed.decode().split("\0") if name]


def test_no_tracked_file_refers_to_a_folder_beside_the_repository() -> None:
    files = tracked_files()
    assert "tests/conftest.py" in files
    offenders = [
        name
        for name in files
        if (ROOT / name).is_file() and OUTSIDE in (ROOT / name).read_text(errors="replace")
    ]
    assert offenders == []


def test_telnyx_example_payloads_are_fixtures_inside_the_repository() -> None:
    assert EXAMPLES.is_relative_to(ROOT)
    assert sorted(path.stem for path in EXAMPLES.glob("*.json")) == [
        "help",
        "message_finalized",
        "message_finalized_stop_block",  # these five: Telnyx's documented send errors
        "message_finalized_toll_free_block",
        "message_finalized_undeliverable",
        "message_finalized_unreachable",
        "message_sent_stop_block",
        "ordinary_message",
        "possible_opt_out",
        "revoke_without_autoresponse",
        "start_long_code",
        "stop_long_code",
        "stop_toll_free",
        "unstop_toll_free",
    ]
