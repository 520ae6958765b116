"""Outbound webhooks (spec §16): deliveries per second to a local receiver, and the lag from
audit row to delivered while changes arrive at a steady rate, each against a baseline from
the same run."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg_pool import ConnectionPool

from app.devtools.bench.common import Context, Figure, phone_numbers, stop_payload
from app.devtools.bench.database import fill_audit_rows
from app.devtools.bench.http import (
    _forget_queue,
    _pending,
    _procfile,
    _Servers,
    _serving,
    _wait_until,
    accept_steadily,
)
from app.devtools.devstack import free_port
from app.devtools.simulate import encode
from app.outbound.messages import headers, webhook_id
from app.outbound.sender import Sender
from app.services import outbound
from app.store import outbox

# As many threads as a worker process sends on (workers.tasks.DELIVERY_THREADS).
THREADS = 16


@contextmanager
def _sink(env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """A receiver in its own process, logging each webhook-id with its arrival time."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="optout-sync-sink-") as folder:
        log = Path(folder) / "arrivals.log"
        command = f"{sys.executable} -m app.devtools.webhook_sink --port {port} --log {log}"
        with _serving([command], env):
            _wait_until(lambda: _answers(port), 30, "the webhook receiver to start")
            yield f"http://127.0.0.1:{port}/hooks", log


def _answers(port: int) -> bool:
    answer = Sender(allow_private=True).post(f"http://127.0.0.1:{port}/", {}, b"{}")
    return answer.status == 200


def _arrivals(log: Path) -> dict[str, float]:
    """webhook-id → when it first arrived (Unix seconds)."""
    arrived: dict[str, float] = {}
    for line in log.read_text().splitlines():
        message_id, when = line.split()
        arrived.setdefault(message_id, float(when))
    return arrived


def _add_endpoint(url: str, target: str) -> str:
    with psycopg.connect(url) as conn, conn.transaction():
        return outbound.add_endpoint(conn, target, None, None, allow_private=True).id


def bench_outbound(ctx: Context, url: str) -> list[Figure]:
    return [_deliveries_per_second(ctx, url), _delivery_lag(ctx, url)]


def _deliveries_per_second(ctx: Context, url: str) -> Figure:
    """A backlog of webhooks delivered by the worker's own code (claim, sign, send on 16
    threads, settle), vs the same sender POSTing the same number of bodies with no
    database."""
    count = 20_000 if ctx.size.export_rows >= 100_000 else 500
    with _sink(dict(os.environ)) as (target, log):
        endpoint = _add_endpoint(url, target)
        with psycopg.connect(url) as conn:
            fill_audit_rows(conn, count)
            outbox.enqueue(conn, 1, count)
            conn.commit()
        sender = Sender(allow_private=True)
        with (
            ConnectionPool(url, min_size=1, max_size=2, open=True) as pool,
            ThreadPoolExecutor(THREADS) as threads,
        ):
            started = time.perf_counter()
            outcomes, _ = outbound.deliver_all_due(
                pool, sender, threads, batch=THREADS * 2, time_budget=3600
            )
            ours = time.perf_counter() - started
            body = b'{"type":"consent.opted_out","timestamp":"","data":{}}' * 8
            secret = "whsec_" + "A" * 32

            def post(index: int) -> None:
                message_id = f"msg_baseline_{index}"
                sender.post(target, headers(secret, message_id, int(time.time()), body), body)

            started = time.perf_counter()
            list(threads.map(post, range(count)))
            baseline = time.perf_counter() - started
        delivered = {k for k in _arrivals(log) if k.startswith(f"msg_{endpoint[3:]}_")}
        with psycopg.connect(url) as conn, conn.transaction():
            outbound.remove_endpoint(conn, endpoint)  # its receiver stops here
    if outcomes.get("delivered") != count or len(delivered) != count:
        raise RuntimeError(f"delivered {outcomes} ({len(delivered):,} arrived) of {count:,}")
    return Figure(
        "outbound",
        count / ours,
        "webhooks/s",
        "bare POSTs",
        count / baseline,
        higher_is_better=True,
        detail=f"{count:,} webhooks on {THREADS} threads, each claimed, signed and settled",
    )


def _delivery_lag(ctx: Context, url: str) -> Figure:
    """STOPs accepted at a steady rate (100/s in full), applied by the Procfile's worker, which
    then delivers their webhooks: audit row → arrived, vs accepted → audit row."""
    rate = 100.0 if ctx.size.export_rows >= 100_000 else 20.0
    seconds = 60.0 if ctx.size.export_rows >= 100_000 else 3.0
    servers = _Servers.for_run(url, ctx.broker_url, "outbound")
    env = servers.env | {"ENDPOINTS_ALLOW_PRIVATE": "true"}
    bodies = [encode(stop_payload(n)) for n in phone_numbers(int(rate * seconds) + 1, area=415)]
    try:
        with _sink(env) as (target, log):
            endpoint = _add_endpoint(url, target)
            with (
                _serving([_procfile()["worker"]], env),
                psycopg.connect(url, autocommit=True) as conn,
            ):
                (before,) = conn.execute("SELECT coalesce(max(seq), 0) FROM audit_log").fetchone()  # type: ignore[misc]
                _, reached = accept_steadily(conn, env, bodies, rate)
                _wait_until(lambda: _pending(conn) == 0, 120, "the changes to be applied")
                _wait_until(lambda: outbox.backlog(conn)[0] == 0, 120, "the webhooks to go")
                rows = conn.execute(
                    "SELECT seq, extract(epoch FROM recorded_at),"
                    "  extract(epoch FROM recorded_at - received_at)"
                    " FROM audit_log WHERE seq > %s ORDER BY seq OFFSET 1",
                    (before,),
                ).fetchall()
            arrived = _arrivals(log)
    finally:
        _forget_queue(env["REDIS_URL"], servers.queue)
    missing = [seq for seq, _, _ in rows if webhook_id(endpoint, seq) not in arrived]
    if missing or len(rows) != len(bodies) - 1:
        raise RuntimeError(f"{len(missing):,} of {len(rows):,} changes' webhooks never arrived")
    lags = sorted(arrived[webhook_id(endpoint, seq)] - float(at) for seq, at, _ in rows)
    applying = sorted(float(lag) for _, _, lag in rows)
    return Figure(
        "outbound-lag-p99",
        _percentile(lags, 0.99) * 1000,
        "ms",
        "apply p99",
        _percentile(applying, 0.99) * 1000,
        higher_is_better=False,
        detail=f"{len(lags):,} changes at {reached:,.0f}/s; p50 {_percentile(lags, 0.5) * 1000:.0f}"
        f" ms (audit row → delivered) vs apply p50 {_percentile(applying, 0.5) * 1000:.0f} ms",
    )


def _percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]
