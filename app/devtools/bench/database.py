"""The benchmarks that run in-process against a scratch database: the worker's drain,
can-send, exports and the keyword engine over many texts."""

from __future__ import annotations

import functools
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg_pool import ConnectionPool

from app.devtools.bench.common import (
    LONG_CODE,
    TOLL_FREE,
    Context,
    Figure,
    phone_numbers,
    timed,
    traffic_text,
)
from app.devtools.simulate import encode, message_received
from app.services import exports, lookup
from app.store import inbox

# --- worker ------------------------------------------------------------------------------------


def _drain_in_child(url: str, batch_size: int, ready: Any, finished: Any) -> None:
    from app.services import apply_events

    with ConnectionPool(url, min_size=1, max_size=1, open=True) as pool:
        pool.wait()
        ready.wait()  # every process connected: the clock starts
        result = apply_events.drain(
            pool, batch_size=batch_size, max_attempts=5, time_budget_seconds=3600
        )
    finished.put((result.processed, time.perf_counter()))


def queue_replies(url: str, numbers: list[str]) -> None:
    """A pending backlog of campaign replies in the traffic mix, one per number."""
    with psycopg.connect(url) as conn:
        copy_sql = "COPY webhook_events (event_id, event_type, status, raw_body) FROM STDIN"
        with conn.cursor().copy(copy_sql) as copy:
            for index, number in enumerate(numbers):
                payload = message_received(
                    text=traffic_text(index),
                    from_number=number,
                    profile_id="bench",
                    to_number=TOLL_FREE if index % 5 == 0 else LONG_CODE,
                )
                copy.write_row(
                    (payload["data"]["id"], "message.received", "pending", encode(payload))
                )
        conn.commit()
        conn.execute("ANALYZE webhook_events")  # as autovacuum keeps a live inbox
        conn.commit()


def drain_seconds(ctx: Context, url: str) -> float:
    """How long as many processes as a Celery worker runs take to apply what is pending."""
    context = multiprocessing.get_context("fork")
    ready, finished = context.Barrier(ctx.processes + 1), context.Queue()
    children = [
        context.Process(target=_drain_in_child, args=(url, ctx.batch_size, ready, finished))
        for _ in range(ctx.processes)
    ]
    for child in children:
        child.start()
    ready.wait()
    started = time.perf_counter()
    reports = [finished.get(timeout=3600) for _ in children]
    for child in children:
        child.join()
    with psycopg.connect(url) as conn:
        left = {s: n for s, n in inbox.count_by_status(conn).items() if s != "processed"}
    if left:
        raise RuntimeError(f"the drain left events unprocessed: {left}")
    return max(at for _, at in reports) - started


def bench_worker(ctx: Context, url: str) -> list[Figure]:
    """A backlog of mixed campaign replies drained by as many processes as a Celery worker
    runs (classified, state, audit) vs raw batched upserts of the same numbers."""
    events = ctx.size.worker_events
    numbers = phone_numbers(events)
    queue_replies(url, numbers)
    seconds = drain_seconds(ctx, url)
    with psycopg.connect(url) as conn:

        def raw_upserts() -> None:
            for start in range(0, events, 500):
                conn.execute(
                    "INSERT INTO subscribers (messaging_profile_id, phone_number, status)"
                    " SELECT 'raw', n, 'opted_out' FROM unnest(%b::text[]) AS n"
                    " ON CONFLICT (messaging_profile_id, phone_number)"
                    " DO UPDATE SET status = excluded.status",
                    (numbers[start : start + 500],),
                )
                conn.commit()

        baseline = timed(raw_upserts)
    return [
        Figure(
            "worker",
            events / seconds,
            "events/s",
            "raw batched upserts",
            events / baseline,
            higher_is_better=True,
            detail=f"{events:,} events, {ctx.processes} processes, batches of {ctx.batch_size}",
        )
    ]


# --- classify ----------------------------------------------------------------------------------


# Texts that never repeat, so no verdict comes from a cache: the intent tier reads each.
UNIQUE_TEXTS = (
    "Thanks! See you at {n}",
    "please stop texting me about order {n}",
    "I want to cancel my order {n}",
    "Can I cancel my {n} appointment?",
    "who is this? {n} stop",
    "leave me alone, I told you {n} times",
    "Is the sale on until the {n}th?",
    "don't stop sending deals, code {n} was great",
)


def bench_classify(ctx: Context, url: str) -> list[Figure]:
    """`classify --file`, one JSON verdict per line, over a campaign's replies (the worker
    benchmark's mix, one in five unique) and over texts that are all unique, vs normalising
    the same lines into JSON lines."""
    from app.consent.classify_lines import classify_lines
    from app.consent.keyword_configs import KeywordEngine
    from app.consent.keywords import normalize

    count = ctx.size.worker_events
    campaign = [traffic_text(index) + "\n" for index in range(count)]
    unique = [UNIQUE_TEXTS[i % len(UNIQUE_TEXTS)].format(n=i) + "\n" for i in range(count)]
    figures = []
    for name, lines in (("classify", campaign), ("classify-new", unique)):
        engine = KeywordEngine()  # a fresh one: nothing cached from an earlier run

        def ours(lines: list[str] = lines, engine: KeywordEngine = engine) -> None:
            for _ in classify_lines(lines, engine, sender="+13125550147"):
                pass

        def framing(lines: list[str] = lines) -> None:
            # The floor of any keyword matching: each text normalised, one JSON line out.
            for line in lines:
                text = line.rstrip("\n")
                orjson.dumps({"text": text, "normalized": normalize(text)})

        seconds, baseline = timed(ours), timed(framing)
        figures.append(
            Figure(
                name,
                count / seconds,
                "texts/s",
                "normalising alone",
                count / baseline,
                higher_is_better=True,
                detail=f"{count:,} texts",
            )
        )
    return figures


# --- can-send ----------------------------------------------------------------------------------


def _api_client(url: str) -> Any:
    """The Flask app in-process, on the scratch database, with the token "bench" (admin)."""
    from nacl.signing import SigningKey

    from app.config import Settings
    from app.devtools.simulate import public_key_b64
    from app.web import create_app

    settings = Settings.from_env(
        {
            "DATABASE_URL": url,
            "API_TOKENS": "admin:bench",
            "TELNYX_PUBLIC_KEY": public_key_b64(SigningKey.generate()),
        }
    )
    return create_app(settings).test_client()


def bench_intake(ctx: Context, url: str) -> list[Figure]:
    """POST /v1/consent with 1,000 agent opt-outs (validated, applied, audited, answered)
    through the Flask app in-process, vs a raw upsert of the same subscribers."""
    size = 1000 if ctx.size.worker_events >= 100_000 else 100
    client = _api_client(url)
    rounds = [phone_numbers(size, area=312 + index) for index in range(4)]

    def post(numbers: list[str]) -> None:
        events = [
            {
                "phone_number": n,
                "messaging_profile_id": "bench",
                "action": "opt_out",
                "channel": "agent",
            }
            for n in numbers
        ]
        answer = client.post(
            "/v1/consent", json={"events": events}, headers={"Authorization": "Bearer bench"}
        )
        if answer.status_code != 200:
            raise RuntimeError(f"intake answered {answer.status_code}: {answer.get_data()!r}")

    post(rounds[0])  # warm the pools and plans
    ours = min(timed(functools.partial(post, numbers)) for numbers in rounds[1:])
    with psycopg.connect(url) as conn:

        def raw(numbers: list[str]) -> None:
            conn.execute(
                "INSERT INTO subscribers (messaging_profile_id, phone_number, status)"
                " SELECT 'raw', n, 'opted_out' FROM unnest(%b::text[]) AS n"
                " ON CONFLICT (messaging_profile_id, phone_number)"
                " DO UPDATE SET status = excluded.status",
                (numbers,),
            )
            conn.commit()

        baseline = min(timed(functools.partial(raw, numbers)) for numbers in rounds[1:])
    return [
        Figure(
            "intake",
            ours * 1000,
            "ms",
            "raw upsert",
            baseline * 1000,
            higher_is_better=False,
            detail=f"{size:,} events per request",
        )
    ]


def bench_can_send(ctx: Context, url: str) -> list[Figure]:
    """One batched can-send of N numbers (half opted out) vs a raw SELECT of the same rows."""
    numbers = phone_numbers(ctx.size.can_send_numbers)
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO subscribers (messaging_profile_id, phone_number, status, consent_status)"
            " SELECT 'bench', n, 'opted_out', 'opted_out' FROM unnest(%s::text[]) AS n",
            (numbers[::2],),
        )
        conn.commit()
        lookup.can_send(conn, "bench", LONG_CODE, numbers)  # warm the plan and cache
        ours = min(
            timed(lambda: lookup.can_send(conn, "bench", LONG_CODE, numbers)) for _ in range(5)
        )
        raw = min(
            timed(
                lambda: conn.execute(
                    "SELECT phone_number, status FROM subscribers"
                    " WHERE messaging_profile_id = 'bench' AND phone_number = ANY(%b)",
                    (numbers,),
                ).fetchall()
            )
            for _ in range(5)
        )
    return [
        Figure(
            "can-send",
            ours * 1000,
            "ms",
            "raw SELECT",
            raw * 1000,
            higher_is_better=False,
            detail=f"{len(numbers):,} numbers",
        )
    ]


# --- export ------------------------------------------------------------------------------------


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


def bench_changes(ctx: Context, url: str) -> list[Figure]:
    """GET /v1/changes for 10,000 audit rows in one call, through the app in-process, vs a
    raw SELECT of the same rows."""
    rows = 10_000 if ctx.size.export_rows >= 100_000 else 1_000
    with psycopg.connect(url) as conn:
        fill_audit_rows(conn, rows)
        client = _api_client(url)

        def read() -> Any:
            return client.get(
                f"/v1/changes?after=0&limit={rows}", headers={"Authorization": "Bearer bench"}
            )

        def raw() -> None:
            conn.execute(
                "SELECT * FROM audit_log WHERE seq > 0 ORDER BY seq LIMIT %s", (rows,)
            ).fetchall()

        answer = read()  # warms the plans and cache, as raw() does
        if answer.status_code != 200 or len(answer.get_json()["changes"]) != rows:
            raise RuntimeError(f"the feed answered {answer.status_code}")
        raw()
        ours = min(timed(read) for _ in range(5))
        baseline = min(timed(raw) for _ in range(5))
    return [
        Figure(
            "changes",
            ours * 1000,
            "ms",
            "raw SELECT",
            baseline * 1000,
            higher_is_better=False,
            detail=f"{rows:,} changes in one call",
        )
    ]


# Runs the export in a fresh interpreter and prints its peak resident memory. VmHWM, not
# getrusage: that would count the benchmark process's own memory, inherited at fork.
_RUN_AND_REPORT = """
import sys
from app.cli import main
main(sys.argv[1:], standalone_mode=False)
status = open("/proc/self/status").read()
print(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
"""


def _cli_run(url: str, *args: str) -> tuple[float, float]:
    """Seconds and peak resident memory (MiB) of an optout-sync command run as its own
    process."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", _RUN_AND_REPORT, *args],
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - started, int(completed.stdout.split()[-1]) / 1024  # kB


def bench_export(ctx: Context, url: str) -> list[Figure]:
    """The audit export to CSV vs a raw COPY of the same rows (both discarded as they come);
    and the exporting process's peak memory for every row vs for none."""
    rows = ctx.size.export_rows
    with psycopg.connect(url) as conn:
        fill_audit_rows(conn, rows)

        def ours() -> None:
            for _ in exports.stream(conn, exports.ExportRequest("audit", "csv")):
                pass

        def raw() -> None:
            with conn.cursor().copy("COPY audit_log TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
                for _ in copy:
                    pass

        ours_s = min(timed(ours) for _ in range(3))
        raw_s = min(timed(raw) for _ in range(3))
    export = ("export", "audit", "--output", os.devnull)
    every = _cli_run(url, *export)[1]
    none = _cli_run(url, *export, "--since", "2999-01-01T00:00:00Z")[1]
    return [
        Figure(
            "export",
            rows / ours_s,
            "rows/s",
            "raw COPY",
            rows / raw_s,
            higher_is_better=True,
            detail=f"{rows:,} rows in {ours_s:.2f} s; peak memory {every:.0f} MiB,"
            f" {none:.0f} MiB exporting nothing",
        )
    ]


# --- import ------------------------------------------------------------------------------------

IMPORT_HEADER = (
    "phone_number,messaging_profile_id,action,occurred_at,channel,evidence_consent_text,"
    "evidence_capture_url\n"
)


def write_import_file(path: Path, rows: int) -> None:
    """Another platform's list: four opt-outs to each web-form opt-in (with its wording), over
    two profiles and a year; one row in twenty is a number seen before, later."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    numbers = phone_numbers(rows)
    with path.open("w", encoding="utf-8") as file:
        file.write(IMPORT_HEADER)
        for index in range(rows):
            number = numbers[index // 2 if index % 20 == 19 else index]
            when = (start + timedelta(seconds=index * 31_536_000 // rows)).isoformat()
            profile = "bench-a" if index % 3 else "bench-b"
            if index % 5 == 4:
                file.write(
                    f"{number},{profile},opt_in,{when},web_form,"
                    "Yes! Send me offers by text. Msg & data rates may apply. Reply STOP to"
                    " stop.,https://example.com/join\n"
                )
            else:
                file.write(f"{number},{profile},opt_out,{when},,,\n")


def bench_import(ctx: Context, url: str) -> list[Figure]:
    """`optout-sync import consent` of a CSV list as its own process (checked, staged, applied
    and audited) vs a raw COPY of the same file into a bare table."""
    rows = ctx.size.import_rows
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "consent.csv"
        write_import_file(path, rows)
        ours, peak = _cli_run(url, "import", "consent", str(path))
        with psycopg.connect(url) as conn:
            (audited,) = conn.execute("SELECT count(*) FROM audit_log").fetchone()  # type: ignore[misc]
            if audited != rows:
                raise RuntimeError(f"the import wrote {audited:,} audit rows for {rows:,}")
            conn.execute(
                "CREATE TABLE raw_import (phone_number text, messaging_profile_id text,"
                " action text, occurred_at timestamptz, channel text, consent_text text,"
                " capture_url text)"
            )

            def raw() -> None:
                with (
                    conn.cursor().copy("COPY raw_import FROM STDIN (FORMAT csv, HEADER)") as copy,
                    path.open("rb") as file,
                ):
                    while chunk := file.read(1 << 20):
                        copy.write(chunk)
                conn.commit()

            baseline = timed(raw)
    return [
        Figure(
            "import",
            rows / ours,
            "rows/s",
            "raw COPY",
            rows / baseline,
            higher_is_better=True,
            detail=f"{rows:,} rows in {ours:.1f} s, peak memory {peak:.0f} MiB",
        )
    ]
