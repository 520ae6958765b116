"""`optout-sync bench`: figures against baselines measured in the same run (spec §8).

Each benchmark works in a scratch database it creates on the server of DATABASE_URL (or the
embedded one) and drops afterwards, so it never touches real subscribers; the receiver and
lag benchmarks also use a Celery queue of their own on the broker, emptied afterwards.
"""

from __future__ import annotations

import multiprocessing
import os
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import psycopg
from flask import Flask
from nacl.signing import SigningKey
from psycopg_pool import ConnectionPool

from app.devtools import loadgen
from app.devtools.devstack import free_port
from app.devtools.simulate import encode, message_received, public_key_b64, sign
from app.devtools.supervisor import Supervisor, read_procfile
from app.services import exports, lookup
from app.store import inbox, migrations
from app.telnyx.events import MESSAGE_RECEIVED


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    baseline_name: str
    baseline: float
    higher_is_better: bool
    detail: str = ""

    @property
    def ratio(self) -> float:
        if not self.baseline or not self.value:
            return 0.0
        return self.value / self.baseline if self.higher_is_better else self.baseline / self.value

    def line(self) -> str:
        text = (
            f"{self.name:<12} {self.value:>12,.1f} {self.unit:<10} baseline {self.baseline_name}: "
            f"{self.baseline:>12,.1f} {self.unit:<10} ratio {self.ratio:.3g}"
        )
        return f"{text}  ({self.detail})" if self.detail else text


@dataclass(frozen=True)
class Size:
    worker_events: int
    can_send_numbers: int
    export_rows: int
    receiver_seconds: float  # for the peak, and again at 80% of it
    receiver_clients: int
    lag_rate: float
    lag_seconds: float


SIZES = {
    "tiny": Size(400, 200, 2_000, 1.0, 4, 40.0, 2.0),
    "full": Size(100_000, 10_000, 1_000_000, 8.0, 16, 1_000.0, 60.0),
}


@dataclass(frozen=True)
class Context:
    server_url: str  # the PostgreSQL server's maintenance database
    broker_url: str | None
    size: Size
    processes: int  # worker processes, as Celery's prefork pool runs by default
    generator: str = "auto"  # auto (wrk when installed) | wrk | builtin
    batch_size: int = 500  # WORKER_BATCH_SIZE


# --- helpers -----------------------------------------------------------------------------------


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


def _numbers(count: int, area: int = 312) -> list[str]:
    """Distinct numbers, valid in the given area code (exchanges 200 onwards)."""
    return [f"+1{area}{200 + i // 10000:03d}{i % 10000:04d}" for i in range(count)]


LONG_CODE = "+17735550188"
TOLL_FREE = "+18885550123"
# What follows a campaign, in twenty: keyword opt-outs in their usual spellings, opt-ins,
# HELP, a phrase held for review, and chatter that is no keyword at all (each one unique).
TRAFFIC = (
    ["STOP"] * 5 + ["Stop", "stop", "STOP.", "Stop please", "UNSUBSCRIBE", "cancel", "quit"]
    + ["START", "UNSTOP", "HELP", "please stop texting me"] + ["chatter"] * 4
)  # fmt: skip


def traffic_text(index: int) -> str:
    text = TRAFFIC[index % len(TRAFFIC)]
    return f"Thanks! See you at {index % 12 + 1} ({index})" if text == "chatter" else text


def _stop_payload(number: str) -> dict[str, Any]:
    return message_received(text="STOP", from_number=number, to_number=LONG_CODE,
                            profile_id="bench")  # fmt: skip


def _signed_requests(key: SigningKey, count: int, area: int) -> list[bytes]:
    requests = []
    for number in _numbers(count, area):
        body = encode(_stop_payload(number))
        requests.append(loadgen.http_post("/webhooks/messaging", body, sign(body, key)))
    return requests


# --- worker ------------------------------------------------------------------------------------


def _drain_in_child(url: str, batch_size: int, ready: Any, finished: Any) -> None:
    from app.services import apply_events

    with ConnectionPool(url, min_size=1, max_size=1, open=True) as pool:
        pool.wait()
        ready.wait()  # every process connected: the clock starts
        result = apply_events.drain(pool, batch_size=batch_size, max_attempts=5,
                            time_budget_seconds=3600)  # fmt: skip
    finished.put((result.processed, time.perf_counter()))


def bench_worker(ctx: Context, url: str) -> list[Figure]:
    """A backlog of mixed campaign replies drained by as many processes as a Celery worker
    runs (classified, state, audit) vs raw batched upserts of the same numbers."""
    events = ctx.size.worker_events
    numbers = _numbers(events)
    with psycopg.connect(url) as conn:
        copy_sql = "COPY webhook_events (event_id, event_type, status, raw_body) FROM STDIN"
        with conn.cursor().copy(copy_sql) as copy:
            for index, number in enumerate(numbers):
                payload = message_received(
                    text=traffic_text(index), from_number=number, profile_id="bench",
                    to_number=TOLL_FREE if index % 5 == 0 else LONG_CODE)  # fmt: skip
                copy.write_row((payload["data"]["id"], "message.received", "pending",
                                encode(payload)))  # fmt: skip
        conn.commit()
        conn.execute("ANALYZE webhook_events")  # as autovacuum keeps a live inbox
        conn.commit()
    context = multiprocessing.get_context("fork")
    ready, finished = context.Barrier(ctx.processes + 1), context.Queue()
    children = [context.Process(target=_drain_in_child,
                                args=(url, ctx.batch_size, ready, finished))
                for _ in range(ctx.processes)]  # fmt: skip
    for child in children:
        child.start()
    ready.wait()
    started = time.perf_counter()
    reports = [finished.get(timeout=3600) for _ in children]
    for child in children:
        child.join()
    seconds = max(at for _, at in reports) - started
    with psycopg.connect(url) as conn:
        statuses = inbox.count_by_status(conn)
        if statuses != {"processed": events}:
            raise RuntimeError(f"the drain left events unprocessed: {statuses}")

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

        baseline = _timed(raw_upserts)
    return [Figure("worker", events / seconds, "events/s", "raw batched upserts",
                   events / baseline, higher_is_better=True,
                   detail=f"{events:,} events, {ctx.processes} processes,"
                          f" batches of {ctx.batch_size}")]  # fmt: skip


# --- classify ----------------------------------------------------------------------------------


# Texts that never repeat, so no verdict comes from a cache: the intent tier reads each.
UNIQUE_TEXTS = (
    "Thanks! See you at {n}", "please stop texting me about order {n}",
    "I want to cancel my order {n}", "Can I cancel my {n} appointment?",
    "who is this? {n} stop", "leave me alone, I told you {n} times",
    "Is the sale on until the {n}th?", "don't stop sending deals, code {n} was great",
)  # fmt: skip


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

        seconds, baseline = _timed(ours), _timed(framing)
        figures.append(Figure(name, count / seconds, "texts/s", "normalising alone",
                              count / baseline, higher_is_better=True,
                              detail=f"{count:,} texts"))  # fmt: skip
    return figures


# --- can-send ----------------------------------------------------------------------------------


def bench_can_send(ctx: Context, url: str) -> list[Figure]:
    """One batched can-send of N numbers (half opted out) vs a raw SELECT of the same rows."""
    numbers = _numbers(ctx.size.can_send_numbers)
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO subscribers (messaging_profile_id, phone_number, status, consent_status)"
            " SELECT 'bench', n, 'opted_out', 'opted_out' FROM unnest(%s::text[]) AS n",
            (numbers[::2],),
        )
        conn.commit()
        lookup.can_send(conn, "bench", LONG_CODE, numbers)  # warm the plan and cache
        ours = min(_timed(lambda: lookup.can_send(conn, "bench", LONG_CODE, numbers))
                   for _ in range(5))  # fmt: skip
        raw = min(
            _timed(lambda: conn.execute(
                "SELECT phone_number, status FROM subscribers"
                " WHERE messaging_profile_id = 'bench' AND phone_number = ANY(%b)",
                (numbers,)).fetchall())
            for _ in range(5)
        )  # fmt: skip
    return [Figure("can-send", ours * 1000, "ms", "raw SELECT", raw * 1000,
                   higher_is_better=False, detail=f"{len(numbers):,} numbers")]  # fmt: skip


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


# Runs the export in a fresh interpreter and prints its peak resident memory. VmHWM, not
# getrusage: that would count the benchmark process's own memory, inherited at fork.
_EXPORT_AND_REPORT = """
import os, sys
from app.cli import main
main(["export", "audit", "--output", os.devnull, *sys.argv[1:]], standalone_mode=False)
status = open("/proc/self/status").read()
print(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
"""


def _export_peak_rss_mib(url: str, *args: str) -> float:
    """Peak resident memory of `optout-sync export audit` run as its own process."""
    completed = subprocess.run(
        [sys.executable, "-c", _EXPORT_AND_REPORT, *args], env={**os.environ, "DATABASE_URL": url},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(completed.stdout.split()[-1]) / 1024  # kB


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

        ours_s = min(_timed(ours) for _ in range(3))
        raw_s = min(_timed(raw) for _ in range(3))
    every = _export_peak_rss_mib(url)
    none = _export_peak_rss_mib(url, "--since", "2999-01-01T00:00:00Z")
    return [Figure("export", rows / ours_s, "rows/s", "raw COPY", rows / raw_s,
                   higher_is_better=True,
                   detail=f"{rows:,} rows in {ours_s:.2f} s; peak memory {every:.0f} MiB,"
                          f" {none:.0f} MiB exporting nothing")]  # fmt: skip


# --- receiver and lag: the Procfile's own processes --------------------------------------------


def _procfile() -> dict[str, str]:
    return read_procfile()


def _bare_web_command() -> str:
    """The Procfile's web command, gunicorn settings and all, serving the bare app instead."""
    words = shlex.split(_procfile()["web"])
    return shlex.join([*words[:-1], "app.devtools.bench:bare_app()"])


def bare_app() -> Flask:
    """The baseline: a Flask endpoint that reads the body and answers 200."""
    from flask import request

    app = Flask("optout_sync_bare")

    @app.post("/webhooks/messaging")
    def accept() -> tuple[str, int]:
        request.get_data()
        return "OK", 200

    return app


@contextmanager
def _serving(commands: list[str], env: dict[str, str], port: int | None = None) -> Iterator[None]:
    """Run commands (each its own process group), wait for the web port to answer if one is
    given, and stop them all afterwards."""
    with tempfile.TemporaryDirectory(prefix="optout-sync-bench-") as logs:
        named = {f"process{index}": command for index, command in enumerate(commands)}
        with Supervisor(named, env, log_dir=Path(logs)) as servers:
            if port is not None:
                _wait_for_web(port, servers)
            yield


def _wait_for_web(port: int, servers: Supervisor) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # answering, even if only 404
        except OSError:
            pass
        if time.monotonic() > deadline or servers.exited():
            logs = "\n".join(servers.log(child.name) for child in servers.children)
            raise RuntimeError("bench servers did not start:\n" + logs)
        time.sleep(0.2)


@dataclass(frozen=True)
class _Servers:
    """What the bench's own web and worker processes run with."""

    key: SigningKey  # signs the events; its public half is TELNYX_PUBLIC_KEY
    queue: str  # a Celery queue of the bench's own
    port: int
    env: dict[str, str]

    @classmethod
    def for_run(cls, url: str, broker_url: str | None, benchmark: str) -> _Servers:
        if not broker_url:
            raise RuntimeError(f"the {benchmark} benchmark needs a broker (REDIS_URL)")
        key, queue = SigningKey.generate(), f"optout-sync-bench-{uuid.uuid4().hex[:8]}"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        env.update(
            DATABASE_URL=url, REDIS_URL=broker_url, CELERY_BROKER_URL=broker_url,
            CELERY_QUEUE=queue, TELNYX_PUBLIC_KEY=public_key_b64(key),
            API_TOKENS=f"bench-{uuid.uuid4().hex}", HOST="127.0.0.1", PORT=str(port),
            LOG_LEVEL="WARNING", PATH=os.pathsep.join((str(Path(sys.executable).parent),
                                                       env.get("PATH", ""))),
        )  # fmt: skip
        return cls(key, queue, port, env)


def _forget_queue(broker_url: str, queue: str) -> None:
    """Drop what the bench left on the broker (Redis keeps a queue as a list)."""
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        client = redis.Redis.from_url(broker_url)
        client.delete(queue, f"_kombu.binding.{queue}")
        client.close()


@dataclass(frozen=True)
class _Served:
    peak_rate: float = 0.0  # requests/s, closed loop
    peak_answered: int = 0
    peak_failed: int = 0  # not 200, or no answer
    paced: loadgen.LoadResult | None = None  # open loop at a fixed rate


def _serve_and_load(command: str, env: dict[str, str], port: int, requests: list[bytes],
                    size: Size, use_wrk: bool, peak: bool = True,
                    pace: Callable[[float], float] | None = None) -> _Served:  # fmt: skip
    """Serve ``command`` and load it: its peak (wrk when installed); then, if ``pace`` is
    given, the rate it returns for the built-in generator's own peak, from that generator
    (wrk cannot pace, and costs far less per request). Each request is sent at most once."""
    clients, seconds = size.receiver_clients, size.receiver_seconds
    served = _Served()
    with _serving([command], env, port):
        # Warm every gunicorn worker (imports, pools) before measuring.
        warm = loadgen.closed_loop("127.0.0.1", port, iter(requests), clients, 1.0)
        rest = requests[sum(warm.statuses.values()) + clients :]
        if peak and use_wrk:
            wrk = loadgen.wrk_closed_loop(port, rest, clients, seconds)
            served = _Served(wrk.rate, wrk.requests, wrk.errors)
            rest = rest[wrk.requests + clients :]
        if (peak and not use_wrk) or pace:
            # The built-in generator's own peak: pacing is relative to what it can drive.
            result = loadgen.closed_loop("127.0.0.1", port, iter(rest), clients, seconds)
            failed = sum(n for status, n in result.statuses.items() if status != 200)
            if not use_wrk:
                served = _Served(result.rate, result.answered, failed)
            rest = rest[sum(result.statuses.values()) + clients :]
            if pace:
                paced = loadgen.open_loop("127.0.0.1", port, iter(rest), pace(result.rate),
                                          seconds)  # fmt: skip
                served = replace(served, paced=paced, peak_failed=served.peak_failed + failed)
    return served


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def bench_receiver(ctx: Context, url: str) -> list[Figure]:
    """The real app vs a bare Flask endpoint, both under the Procfile's gunicorn settings and
    driven by the same load generator: each one's peak requests/s; then both at 80% of the
    real app's peak, for their latency."""
    servers = _Servers.for_run(url, ctx.broker_url, "receiver")
    key, port, env, size = servers.key, servers.port, servers.env, ctx.size
    use_wrk = ctx.generator == "wrk" or (ctx.generator == "auto" and loadgen.wrk_available())
    bare_web, real_web = _bare_web_command(), _procfile()["web"]
    # Unique, validly signed events, as Telnyx sends them; the bare app ignores them.
    bare_requests = _signed_requests(key, _requests_for(size, 4000.0), area=415)
    try:
        bare = _serve_and_load(bare_web, env, port, bare_requests, size, use_wrk)
        real = _serve_and_load(real_web, env, port,
                               _signed_requests(key, _requests_for(size, bare.peak_rate), 312),
                               size, use_wrk, pace=lambda peak: 0.8 * peak)  # fmt: skip
    finally:
        _forget_queue(env["REDIS_URL"], servers.queue)
    assert real.paced is not None
    bare_paced = _serve_and_load(
        bare_web,
        env,
        port,
        bare_requests,
        size,
        use_wrk,
        peak=False,
        pace=lambda _: real.paced.rate if real.paced else 0.0,
    ).paced
    assert bare_paced is not None
    failed = real.peak_failed + sum(n for status, n in real.paced.statuses.items() if status != 200)
    generator = "wrk" if use_wrk else "built-in generator"
    return [
        Figure("receiver", real.peak_rate, "req/s", "bare Flask", bare.peak_rate,
               higher_is_better=True,
               detail=f"{real.peak_answered:,} signed events recorded"
                      f"{f', {failed} not 200' if failed else ''}; {generator}"),
        Figure("receiver-p99", real.paced.percentile(0.99) * 1000, "ms", "bare Flask p99",
               bare_paced.percentile(0.99) * 1000, higher_is_better=False,
               detail=f"both at {real.paced.rate:,.0f} req/s, 80% of the real app's peak"
                      f" with this generator;"
                      f" p50 {_ms(real.paced.percentile(0.5))}"
                      f" vs {_ms(bare_paced.percentile(0.5))}; built-in generator"),
    ]  # fmt: skip


def _requests_for(size: Size, rate: float) -> int:
    # Warm-up (1 s), the peak (twice with wrk), 80% of it, with a margin: each is used once.
    return int(rate * (1.0 + 2.8 * size.receiver_seconds) * 1.3) + 200


def _wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting: {what}")
        time.sleep(0.05)


def _pending(conn: psycopg.Connection) -> int:
    return inbox.count_by_status(conn).get("pending", 0)


def bench_lag(ctx: Context, url: str) -> list[Figure]:
    """Events accepted at a steady rate, by the receiver's own record-then-hand-off code,
    applied by the Procfile's worker: accepted → applied (audit recorded_at − inbox
    received_at), against the time accepting took. No HTTP: the load generator would take
    the two cores the worker needs (the receiver benchmark measures HTTP)."""
    from app.config import Settings
    from app.web.handoff import Enqueuer

    servers = _Servers.for_run(url, ctx.broker_url, "lag")
    size = ctx.size
    bodies = [encode(_stop_payload(number))
              for number in _numbers(int(size.lag_rate * size.lag_seconds) + 1)]  # fmt: skip
    enqueuer = Enqueuer(Settings.from_env(servers.env))
    accepting: list[float] = []

    def accept(conn: psycopg.Connection, body: bytes) -> None:
        began = time.perf_counter()
        inbox.record_event(conn, event_id=orjson.loads(body)["data"]["id"],
                           event_type=MESSAGE_RECEIVED, status="pending", raw_body=body,
                           signed_at=None)  # fmt: skip
        enqueuer.request_apply()
        accepting.append(time.perf_counter() - began)

    try:
        with _serving([_procfile()["worker"]], servers.env), \
                psycopg.connect(url, autocommit=True) as conn:  # fmt: skip
            accept(conn, bodies[0])  # the worker is up once this one is applied
            _wait_until(lambda: _pending(conn) == 0, 60, "the worker to start")
            accepting.clear()
            started = time.perf_counter()
            for index, body in enumerate(bodies[1:]):
                delay = started + index / size.lag_rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                accept(conn, body)
            rate = len(accepting) / (time.perf_counter() - started)
            _wait_until(lambda: _pending(conn) == 0, 120, "the backlog to drain")
            row = conn.execute(
                "SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),"
                "  percentile_cont(0.99) WITHIN GROUP (ORDER BY lag)"
                " FROM (SELECT extract(epoch FROM recorded_at - received_at) AS lag"
                "       FROM audit_log WHERE action = 'opt_out' ORDER BY seq OFFSET 1) AS applied"
            ).fetchone()
    finally:
        _forget_queue(servers.env["REDIS_URL"], servers.queue)
    assert row is not None
    applied, p50, p99 = row[0], float(row[1] or 0), float(row[2] or 0)
    accepted = loadgen.LoadResult(latencies=accepting)
    detail = (f"{applied:,} of {len(accepting):,} applied, accepted at {rate:,.0f}/s;"
              f" p50 {_ms(p50)} vs accept {_ms(accepted.percentile(0.5))}")  # fmt: skip
    return [Figure("lag-p99", p99 * 1000, "ms", "accept p99", accepted.percentile(0.99) * 1000,
                   higher_is_better=False, detail=detail)]  # fmt: skip


BENCHMARKS: dict[str, Callable[[Context, str], list[Figure]]] = {
    "receiver": bench_receiver, "worker": bench_worker, "lag": bench_lag,
    "can-send": bench_can_send, "export": bench_export, "classify": bench_classify,
}  # fmt: skip


def run(ctx: Context, names: list[str]) -> Iterator[Figure]:
    for name in names:
        with scratch_database(ctx.server_url) as url:
            yield from BENCHMARKS[name](ctx, url)
