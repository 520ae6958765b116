"""The audit log is append-only in the database and its hash chain proves it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from app.cli import main
from app.consent import audit_chain
from app.consent.audit_chain import AuditEntry
from app.store import audit_log


def entry(number: str, action: str = "opt_out") -> AuditEntry:
    return AuditEntry(
        event_id=None,
        message_id=None,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        received_at=datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
        messaging_profile_id="p",
        phone_number=number,
        our_number="+17735550188",
        country="US",
        action=action,
        source="operator",
        text="STOP",
        autoresponse_type=None,
        previous_status="opted_in",
        new_status="opted_out",
        superseded=False,
        telnyx_block=False,
    )


@pytest.fixture
def audit_db(make_database: Callable[[], str]) -> str:
    url = make_database()
    with psycopg.connect(url) as conn:
        audit_log.append(conn, [entry(f"+1312555010{i}") for i in range(5)])
        conn.commit()
    return url


def verify(
    url: str, anchor: audit_chain.ChainHead | None = None
) -> tuple[int, audit_chain.ChainBreak | None]:
    with psycopg.connect(url) as conn:
        report = audit_log.verify(conn, anchor)
    return report.intact_rows, report.broken


def head(url: str) -> audit_chain.ChainHead:
    with psycopg.connect(url) as conn:
        found = audit_log.verify(conn).head
    assert found is not None
    return found


def test_chain_of_appended_rows_verifies(audit_db: str) -> None:
    assert verify(audit_db) == (5, None)
    assert head(audit_db).seq == 5


def test_seq_is_gap_free_across_appends(audit_db: str) -> None:
    with psycopg.connect(audit_db) as conn:
        assert audit_log.append(conn, [entry("+13125550199")]) == [6]


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET text = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"],
)
def test_database_refuses_to_change_the_audit_log(audit_db: str, statement: str) -> None:
    with psycopg.connect(audit_db) as conn, pytest.raises(psycopg.Error, match="append-only"):
        conn.execute(statement)


def _as_superuser_bypassing_triggers(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # what a superuser could do
        conn.execute(statement)


def _edit_and_rehash(url: str, seq: int) -> None:
    """What a careful superuser would do: edit a row and recompute its own hash."""
    with psycopg.connect(url) as conn:
        cols = ", ".join((*audit_chain.CHAINED_FIELDS, "prev_hash"))
        row = conn.execute(f"SELECT {cols} FROM audit_log WHERE seq = %s", (seq,)).fetchone()
    assert row is not None
    values = list(row[:-1])
    values[audit_chain.CHAINED_FIELDS.index("new_status")] = "opted_in"
    forged = audit_chain.row_hash(row[-1], values)
    _as_superuser_bypassing_triggers(
        url, f"UPDATE audit_log SET new_status = 'opted_in', hash = '{forged}' WHERE seq = {seq}"
    )


def test_verify_names_the_row_a_superuser_edited(audit_db: str) -> None:
    _as_superuser_bypassing_triggers(audit_db, "UPDATE audit_log SET text = 'START' WHERE seq = 3")
    assert verify(audit_db)[1] == audit_chain.ChainBreak(
        3, "content does not match its hash (row was edited)"
    )


def test_verify_names_the_gap_a_superuser_left(audit_db: str) -> None:
    _as_superuser_bypassing_triggers(audit_db, "DELETE FROM audit_log WHERE seq = 2")
    broken = verify(audit_db)[1]
    assert broken is not None and broken.seq == 3 and "missing" in broken.reason


def test_verify_catches_a_rehashed_row_by_the_next_link(audit_db: str) -> None:
    # Editing a row and recomputing its own hash still breaks the next row's prev_hash.
    _edit_and_rehash(audit_db, 2)
    assert verify(audit_db)[1] == audit_chain.ChainBreak(
        3, "prev_hash does not match the previous row's hash"
    )


def _append_recorded_at(url: str, recorded_at: datetime) -> None:
    """A row chained after the last one, as append writes it, but with the clock at
    ``recorded_at``: what a database clock set back (NTP, a VM restored) produces."""
    with psycopg.connect(url) as conn:
        cols = ", ".join(audit_chain.CHAINED_FIELDS)
        last = conn.execute(
            f"SELECT {cols}, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        assert last is not None
        values = [last[0] + 1, recorded_at, *last[2 : len(audit_chain.CHAINED_FIELDS)]]
        conn.execute(
            f"INSERT INTO audit_log ({cols}, prev_hash, hash) VALUES"
            f" ({', '.join(['%s'] * len(values))}, %s, %s)",
            (*values, last[-1], audit_chain.row_hash(last[-1], values)),
        )
        conn.commit()


def test_a_clock_stepping_back_is_a_warning_naming_the_row_and_the_chain_stays_intact(
    audit_db: str,
) -> None:
    stepped_back = datetime(2020, 1, 1, tzinfo=UTC)
    _append_recorded_at(audit_db, stepped_back)
    with psycopg.connect(audit_db) as conn:
        report = audit_log.verify(conn)
    assert (report.intact_rows, report.broken) == (6, None)
    assert report.head is not None and report.head.seq == 6
    assert [(step.seq, step.recorded_at) for step in report.clock_steps] == [(6, stepped_back)]

    result = CliRunner().invoke(main, ["audit", "verify"], env={"DATABASE_URL": audit_db})
    assert result.exit_code == 0
    assert "audit chain intact: 6 rows; head 6:" in result.stdout
    assert result.stderr.startswith(
        "warning: seq 6 was recorded at 2020-01-01T00:00:00+00:00, before seq 5"
    )
    assert result.stderr.rstrip().endswith("the clock stepped back; hashes and links hold")


def test_anchor_catches_a_chain_rewritten_from_an_edited_row(audit_db: str) -> None:
    anchor = head(audit_db)
    # The superuser edits row 5 and recomputes its hash: the chain alone cannot tell.
    _edit_and_rehash(audit_db, 5)
    assert verify(audit_db) == (5, None)
    broken = verify(audit_db, anchor)[1]
    assert broken is not None and broken.seq == 5 and "anchor" in broken.reason


def test_anchor_catches_removed_tail_rows(audit_db: str) -> None:
    anchor = head(audit_db)
    _as_superuser_bypassing_triggers(audit_db, "DELETE FROM audit_log WHERE seq >= 4")
    broken = verify(audit_db, anchor)[1]
    assert broken is not None and broken.seq == 5 and "removed" in broken.reason


def test_audit_verify_command_exits_nonzero_naming_the_row(audit_db: str) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", "verify"], env={"DATABASE_URL": audit_db})
    assert ok.exit_code == 0 and "intact: 5 rows; head 5:" in ok.output
    anchor = ok.output.strip().rsplit("head ", 1)[1]
    anchored = runner.invoke(
        main, ["audit", "verify", "--anchor", anchor], env={"DATABASE_URL": audit_db}
    )
    assert anchored.exit_code == 0
    _as_superuser_bypassing_triggers(audit_db, "UPDATE audit_log SET country = 'CA' WHERE seq = 4")
    bad = runner.invoke(main, ["audit", "verify"], env={"DATABASE_URL": audit_db})
    assert bad.exit_code == 1 and "BROKEN at seq 4" in bad.output
    with psycopg.connect(audit_db) as conn:  # each outcome kept for the console's overview
        checks = conn.execute(
            "SELECT intact_rows, head_seq, broken_seq FROM chain_checks ORDER BY id"
        ).fetchall()
    assert checks == [(5, 5, None), (5, 5, None), (3, None, 4)]


# Any text a row can hold (no lone surrogates: neither UTF-8 nor PostgreSQL can).
_row_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))])),
)


def _stdlib_canonical(values: list[object]) -> bytes:
    # The chain's format as first written: rows hashed this way must keep verifying.
    return json.dumps(
        [
            v.astimezone(UTC).isoformat(timespec="microseconds") if isinstance(v, datetime) else v
            for v in values
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


@settings(max_examples=500)
@given(st.lists(_row_values, max_size=20))
def test_canonical_json_is_the_standard_librarys_compact_form(values: list[object]) -> None:
    assert audit_chain.canonical_json(values) == _stdlib_canonical(values)


def test_canonical_json_writes_every_character_as_the_standard_library_does() -> None:
    every = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(every), 4096):
        chunk = every[start : start + 4096]
        assert audit_chain.canonical_json(chunk) == _stdlib_canonical(chunk)


def test_rows_without_channel_or_evidence_hash_as_the_first_version_did() -> None:
    values = [1, datetime(2026, 1, 1, tzinfo=UTC), *audit_chain.entry_values(entry("+1312"))]
    first_version = hashlib.sha256(
        b"0" * 64 + b"\n" + audit_chain.canonical_json(values[:-2])
    ).hexdigest()
    assert values[-2:] == [None, None]
    assert audit_chain.row_hash("0" * 64, values) == first_version


def test_channel_and_evidence_hash_are_covered_by_the_chain(audit_db: str) -> None:
    body = b'{"consent_text":"Yes"}'
    digest = hashlib.sha256(body).hexdigest()
    agent = replace(
        entry("+13125550190"),
        event_id="api:agent-1",
        source="api",
        channel="agent",
        evidence_sha256=digest,
    )
    with psycopg.connect(audit_db) as conn:
        (seq,) = audit_log.append(conn, [agent])
        audit_log.store_evidence(conn, [("api:agent-1", body, digest)])
        conn.commit()
    assert verify(audit_db) == (6, None)
    _as_superuser_bypassing_triggers(
        audit_db, f"UPDATE audit_log SET evidence_sha256 = '{'cd' * 32}' WHERE seq = {seq}"
    )
    assert verify(audit_db)[1] == audit_chain.ChainBreak(
        seq, "content does not match its hash (row was edited)"
    )
