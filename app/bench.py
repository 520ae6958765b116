"""`optout-sync bench`: figures against baselines measured in the same run (spec §8).

Each benchmark works in a scratch database it creates on the server of DATABASE_URL (or the
embedded one) and drops afterwards, so it never touches real subscribers.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg_pool import ConnectionPool

from app import consent, exports, migrations
from app.simulate import encode, message_received


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    baseline_name: str
    baseline: float
    higher_is_better: bool

    @property
    def ratio(self) -> float:
        if not self.baseline or not self.value:
            return 0.0
        return self.value / self.baseline if self.higher_is_better else self.baseline / self.value

    def line(self) -> str:
        return (
            f"{self.name:<10} {self.value:>12,.1f} {self.unit:<10} baseline {self.baseline_name}: "
            f"{self.baseline:>12,.1f} {self.unit:<10} ratio {self.ratio:.2f}"
        )


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    name = f"optout_sync_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(server_url)._replace(path="/" + name))
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrations.upgrade(conn)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _numbers(count: int) -> list[str]:
    """Distinct numbers that are valid in Chicago's 312 area (exchange 200 onwards)."""
    return [f"+1312{200 + i // 10000:03d}{i % 10000:04d}" for i in range(count)]


def bench_worker(url: str, events: int) -> Figure:
    """A backlog of pending STOPs drained (classified, state, audit) vs raw batched upserts."""
    from workers import sync

    numbers = _numbers(events)
    with psycopg.connect(url) as conn:
        with conn.cursor().copy(
            "COPY webhook_events (event_id, event_type, status, raw_body) FROM STDIN"
        ) as copy:
            for number in numbers:
                payload = message_received(
                    text="STOP", from_number=number, to_number="+17735550188",
                    profile_id="bench")  # fmt: skip
                copy.write_row((payload["data"]["id"], "message.received", "pending",
                                encode(payload)))  # fmt: skip
        conn.commit()
    with ConnectionPool(url, min_size=1, max_size=2, open=True) as pool:
        seconds = _timed(lambda: sync.drain(pool, batch_size=500, max_attempts=5,
                                             time_budget_seconds=3600))  # fmt: skip
    with psycopg.connect(url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM webhook_events WHERE status = 'pending'"
        ).fetchone()
        assert left is not None and left[0] == 0, "the drain left events pending"

        def raw_upserts() -> None:
            for start in range(0, events, 500):
                chunk = numbers[start : start + 500]
                conn.execute(
                    "INSERT INTO subscribers (messaging_profile_id, phone_number, status)"
                    " SELECT 'raw', n, 'opted_out' FROM unnest(%s::text[]) AS n"
                    " ON CONFLICT (messaging_profile_id, phone_number)"
                    " DO UPDATE SET status = excluded.status",
                    (chunk,),
                )
                conn.commit()

        baseline = _timed(raw_upserts)
    return Figure("worker", events / seconds, "events/s", "raw batched upserts",
                  events / baseline, higher_is_better=True)  # fmt: skip


def bench_can_send(url: str, numbers_asked: int) -> Figure:
    """One batched can-send of N numbers (half opted out) vs a raw SELECT of the same rows."""
    numbers = _numbers(numbers_asked)
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO subscribers (messaging_profile_id, phone_number, status, consent_status)"
            " SELECT 'bench', n, 'opted_out', 'opted_out' FROM unnest(%s::text[]) AS n",
            (numbers[::2],),
        )
        conn.commit()
        consent.can_send(conn, "bench", "+17735550188", numbers)  # warm the plan and cache
        ours = min(_timed(lambda: consent.can_send(conn, "bench", "+17735550188", numbers))
                   for _ in range(5))  # fmt: skip
        raw = min(
            _timed(lambda: conn.execute(
                "SELECT phone_number, status FROM subscribers"
                " WHERE messaging_profile_id = 'bench' AND phone_number = ANY(%s)",
                (numbers,)).fetchall())
            for _ in range(5)
        )  # fmt: skip
    return Figure("can-send", ours * 1000, "ms", "raw SELECT", raw * 1000,
                  higher_is_better=False)  # fmt: skip


def fill_audit_rows(conn: psycopg.Connection, rows: int, text: str = "STOP") -> None:
    """Audit rows shaped like real ones, written in bulk; their chain is not valid, which is
    fine for measuring exports (never run this on a real audit log)."""
    conn.execute(
        "INSERT INTO audit_log SELECT g, now(), 'evt-' || g, 'msg-' || g, now(), now(),"
        " 'bench', '+1312555' || lpad((g %% 10000)::text, 4, '0'), '+17735550188', 'US',"
        " 'opt_out', 'keyword', %s, 'STOP', 'opted_in', 'opted_out', false, true,"
        " md5(g::text) || md5(g::text), md5(g::text) || md5('x')"
        " FROM generate_series(1, %s) g",
        (text, rows),
    )
    conn.commit()


def bench_export(url: str, rows: int) -> Figure:
    """The audit export to CSV vs a raw COPY of the same rows (both discarded as they come)."""
    with psycopg.connect(url) as conn:
        fill_audit_rows(conn, rows)

        def ours() -> None:
            for _ in exports.stream(conn, exports.ExportRequest("audit", "csv")):
                pass

        def raw() -> None:
            with conn.cursor().copy("COPY audit_log TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
                for _ in copy:
                    pass

        ours_s = min(_timed(ours) for _ in range(3))
        raw_s = min(_timed(raw) for _ in range(3))
    return Figure("export", rows / ours_s, "rows/s", "raw COPY", rows / raw_s,
                  higher_is_better=True)  # fmt: skip


SIZES = {
    "tiny": {"worker": 200, "can-send": 200, "export": 2_000},
    "full": {"worker": 50_000, "can-send": 10_000, "export": 1_000_000},
}
BENCHMARKS: dict[str, Callable[[str, int], Figure]] = {
    "worker": bench_worker, "can-send": bench_can_send, "export": bench_export,
}  # fmt: skip


def run(server_url: str, names: list[str], size: str) -> Iterator[Figure]:
    for name in names:
        with scratch_database(server_url) as url:
            yield BENCHMARKS[name](url, SIZES[size][name])
