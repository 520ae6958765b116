"""The benchmarks that run the Procfile's own processes: the receiver under load (against a
bare Flask app on the same gunicorn settings) and the lag from accept to applied."""

from __future__ import annotations

import os
import shlex
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

import orjson
import psycopg
from flask import Flask
from nacl.signing import SigningKey

from app.devtools import loadgen
from app.devtools.bench.common import (
    Context,
    Figure,
    Size,
    phone_numbers,
    signed_requests,
    stop_payload,
)
from app.devtools.devstack import free_port
from app.devtools.simulate import encode, public_key_b64
from app.devtools.supervisor import Supervisor, read_procfile
from app.store import inbox
from app.telnyx.events import MESSAGE_RECEIVED

# --- receiver and lag: the Procfile's own processes --------------------------------------------


def _procfile() -> dict[str, str]:
    return read_procfile()


def _bare_web_command() -> str:
    """The Procfile's web command, gunicorn settings and all, serving the bare app instead."""
    words = shlex.split(_procfile()["web"])
    return shlex.join([*words[:-1], "app.devtools.bench.http:bare_app()"])


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
            DATABASE_URL=url,
            REDIS_URL=broker_url,
            CELERY_BROKER_URL=broker_url,
            CELERY_QUEUE=queue,
            TELNYX_PUBLIC_KEY=public_key_b64(key),
            API_TOKENS=f"bench-{uuid.uuid4().hex}",
            HOST="127.0.0.1",
            PORT=str(port),
            LOG_LEVEL="WARNING",
            PATH=os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", ""))),
        )
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


def _serve_and_load(
    command: str,
    env: dict[str, str],
    port: int,
    requests: list[bytes],
    size: Size,
    use_wrk: bool,
    peak: bool = True,
    pace: Callable[[float], float] | None = None,
) -> _Served:
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
                paced = loadgen.open_loop("127.0.0.1", port, iter(rest), pace(result.rate), seconds)
                served = replace(served, paced=paced, peak_failed=served.peak_failed + failed)
    return served


def _commits(url: str) -> int:
    """Transactions committed in the database so far (the statistics of ended sessions
    included: the web processes are stopped before this is read)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def _recorded(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM webhook_events").fetchone()
    return int(row[0]) if row else 0


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
    bare_requests = signed_requests(key, _requests_for(size, 4000.0), area=415)
    try:
        bare = _serve_and_load(bare_web, env, port, bare_requests, size, use_wrk)
        commits_before = _commits(url)
        real = _serve_and_load(
            real_web,
            env,
            port,
            signed_requests(key, _requests_for(size, bare.peak_rate), 312),
            size,
            use_wrk,
            pace=lambda peak: 0.8 * peak,
        )
    finally:
        _forget_queue(env["REDIS_URL"], servers.queue)
    commits, recorded = _commits(url) - commits_before, _recorded(url)
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
        Figure(
            "receiver",
            real.peak_rate,
            "req/s",
            "bare Flask",
            bare.peak_rate,
            higher_is_better=True,
            detail=f"{real.peak_answered:,} signed events recorded"
            f"{f', {failed} not 200' if failed else ''},"
            f" {commits / max(recorded, 1):.2f} commits per webhook; {generator}",
        ),
        Figure(
            "receiver-p99",
            real.paced.percentile(0.99) * 1000,
            "ms",
            "bare Flask p99",
            bare_paced.percentile(0.99) * 1000,
            higher_is_better=False,
            detail=f"both at {real.paced.rate:,.0f} req/s, 80% of the real app's peak"
            f" with this generator;"
            f" p50 {_ms(real.paced.percentile(0.5))}"
            f" vs {_ms(bare_paced.percentile(0.5))}; built-in generator",
        ),
    ]


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


def accept_steadily(
    conn: psycopg.Connection, env: dict[str, str], bodies: list[bytes], rate: float
) -> tuple[list[float], float]:
    """Accept the bodies as the receiver does (record, then hand off to the worker), the
    first alone until the worker has applied it, the rest at ``rate`` per second; return
    how long each acceptance took, and the rate reached."""
    from app.config import Settings
    from app.web.handoff import Enqueuer

    enqueuer = Enqueuer(Settings.from_env(env))
    accepting: list[float] = []

    def accept(body: bytes) -> None:
        began = time.perf_counter()
        inbox.record_event(
            conn,
            event_id=orjson.loads(body)["data"]["id"],
            event_type=MESSAGE_RECEIVED,
            status="pending",
            raw_body=body,
            signed_at=None,
        )
        enqueuer.request_apply()
        accepting.append(time.perf_counter() - began)

    accept(bodies[0])  # the worker is up once this one is applied
    _wait_until(lambda: _pending(conn) == 0, 60, "the worker to start")
    accepting.clear()
    started = time.perf_counter()
    for index, body in enumerate(bodies[1:]):
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        accept(body)
    return accepting, len(accepting) / (time.perf_counter() - started)


def bench_lag(ctx: Context, url: str) -> list[Figure]:
    """Events accepted at a steady rate, by the receiver's own record-then-hand-off code,
    applied by the Procfile's worker: accepted → applied (audit recorded_at − inbox
    received_at), against the time accepting took. No HTTP: the load generator would take
    the two cores the worker needs (the receiver benchmark measures HTTP)."""
    servers = _Servers.for_run(url, ctx.broker_url, "lag")
    size = ctx.size
    bodies = [
        encode(stop_payload(number))
        for number in phone_numbers(int(size.lag_rate * size.lag_seconds) + 1)
    ]
    try:
        with (
            _serving([_procfile()["worker"]], servers.env),
            psycopg.connect(url, autocommit=True) as conn,
        ):
            accepting, rate = accept_steadily(conn, servers.env, bodies, size.lag_rate)
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
    detail = (
        f"{applied:,} of {len(accepting):,} applied, accepted at {rate:,.0f}/s;"
        f" p50 {_ms(p50)} vs accept {_ms(accepted.percentile(0.5))}"
    )
    return [
        Figure(
            "lag-p99",
            p99 * 1000,
            "ms",
            "accept p99",
            accepted.percentile(0.99) * 1000,
            higher_is_better=False,
            detail=detail,
        )
    ]
