"""Nothing lost: real processes, real faults, mid-load.

The tests start their own PostgreSQL and Redis (from the embedded wheels, so they may kill
them), the Procfile's gunicorn, a prefork Celery worker and beat. A sender streams signed
STOPs and retries like Telnyx (non-2xx or timeout: up to 3 retries with backoff). Then a
fault hits: Redis SIGKILLed and restarted, worker pool processes SIGKILLed, PostgreSQL
stopped (immediate mode, like a crash) and restarted. Afterwards every accepted event must
be applied exactly once and the audit chain must verify.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
import pytest
from click.testing import CliRunner
from nacl.signing import SigningKey

from app.cli import main
from app.devtools.devstack import EmbeddedPostgres, EmbeddedRedis, free_port
from app.devtools.simulate import encode, message_received, sign
from app.devtools.supervisor import Supervisor, read_procfile
from app.outbound.messages import webhook_id
from app.store import audit_log, migrations
from tests.conftest import ROOT, wait_for
from tests.webhook_receiver import webhook_receiver

EVENTS = 1500
RATE_PER_SECOND = 250
RETRY_DELAYS = (1.0, 2.0, 4.0)  # Telnyx retries 3 times with backoff (compressed here)


@dataclass
class Stack:
    root: Path
    key: SigningKey
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis
    pg_port: int
    redis_port: int
    web_port: int
    database_url: str = ""
    redis_url: str = ""
    supervisor: Supervisor | None = None

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "TELNYX_PUBLIC_KEY": base64.b64encode(bytes(self.key.verify_key)).decode(),
            "API_TOKENS": "fault-token",
            "PORT": str(self.web_port),
            "HOST": "127.0.0.1",
            "WEB_CONCURRENCY": "3",
            "SWEEP_INTERVAL_SECONDS": "1",
            "MAX_ATTEMPTS": "20",
            "DATA_DIR": str(self.root),
            "CELERY_QUEUE": "faults",
            "ENDPOINTS_ALLOW_PRIVATE": "true",
            "PYTHONUNBUFFERED": "1",
            "PATH": os.pathsep.join((str(Path(sys.executable).parent), os.environ["PATH"])),
        }

    def worker_pid(self) -> int:
        assert self.supervisor is not None
        process = self.supervisor.process("worker")
        assert process is not None
        return process.pid


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The Procfile's web, worker and beat under our own supervisor, which restarts a process
    that dies, as any deployment platform does (Celery's worker can exit when Redis dies)."""
    root = tmp_path_factory.mktemp("faults")
    stack = Stack(
        root,
        SigningKey.generate(),
        EmbeddedPostgres(root, ("-c fsync=off",)),
        EmbeddedRedis(root),
        free_port(),
        free_port(),
        free_port(),
    )
    stack.database_url = stack.postgres.start(stack.pg_port)
    stack.redis_url = stack.redis.start(stack.redis_port)
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        migrations.upgrade(conn)
    procfile = read_procfile(ROOT / "Procfile")
    stack.supervisor = Supervisor(
        {n: procfile[n] for n in ("web", "worker", "beat")}, stack.env(), log_dir=root
    )
    running = threading.Thread(target=stack.supervisor.run, args=(False,), daemon=True)
    running.start()
    try:
        wait_for(lambda: _get(f"http://127.0.0.1:{stack.web_port}/readyz") == 200, timeout=60)
        wait_for(lambda: b"ready." in (root / "worker.log").read_bytes(), timeout=60)
        yield stack
    finally:
        stack.supervisor.stopping.set()
        running.join(30)
        stack.redis.stop()
        stack.postgres.stop("immediate")


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@dataclass
class SendReport:
    accepted: set[str] = field(default_factory=set)  # event ids answered 2xx at least once
    given_up: set[str] = field(default_factory=set)  # Telnyx would give up on these
    statuses: Counter[int] = field(default_factory=Counter)
    bodies: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def deliver(url: str, key: SigningKey, payload: dict[str, object], report: SendReport) -> None:
    """POST like Telnyx: the first attempt, then 3 retries with backoff on non-2xx/timeout."""
    body = encode(payload)
    event_id = str(payload["data"]["id"])  # type: ignore[index]
    for delay in (0.0, *RETRY_DELAYS):
        time.sleep(delay)
        request = urllib.request.Request(url, data=body, headers=sign(body, key), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                status, answer = response.status, json.loads(response.read()).get("status", "")
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, ""
        except OSError:
            status, answer = 0, "timeout"
        with report.lock:
            report.statuses[status] += 1
            report.bodies[answer] += 1
        if 200 <= status < 300:
            with report.lock:
                report.accepted.add(event_id)
            return
    with report.lock:
        report.given_up.add(event_id)


def stream(stack: Stack, profile: str, fault: Callable[[], None], fault_after: float) -> SendReport:
    """Send EVENTS signed STOPs at a steady rate; run ``fault`` in the middle of the load."""
    url = f"http://127.0.0.1:{stack.web_port}/webhooks/messaging"
    report = SendReport()
    payloads = [
        message_received(
            text="STOP",
            autoresponse_type="STOP",
            profile_id=profile,
            from_number=f"+1312{i // 10000:03d}{i % 10000:04d}",
            to_number="+17735550188",
        )
        for i in range(EVENTS)
    ]
    faulting = threading.Thread(target=lambda: (time.sleep(fault_after), fault()))
    faulting.start()
    with ThreadPoolExecutor(max_workers=16) as pool:
        started = time.monotonic()
        for index, payload in enumerate(payloads):
            time.sleep(max(0.0, started + index / RATE_PER_SECOND - time.monotonic()))
            pool.submit(deliver, url, stack.key, payload, report)
            if index % 7 == 0:  # Telnyx also delivers some events twice
                pool.submit(deliver, url, stack.key, payload, report)
    faulting.join()
    return report


def settle_and_check(stack: Stack, profile: str, report: SendReport) -> dict[str, float]:
    """Wait until nothing is pending, then check exactly-once and the chain."""
    started = time.monotonic()

    def pending() -> int:
        try:
            with psycopg.connect(stack.database_url, connect_timeout=2) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM webhook_events WHERE status = 'pending'"
                ).fetchone()
                return int(row[0]) if row else -1
        except psycopg.OperationalError:
            return -1

    wait_for(lambda: pending() == 0, timeout=120, interval=0.25)
    settled = time.monotonic() - started
    with psycopg.connect(stack.database_url) as conn:
        per_event = dict(
            conn.execute(
                "SELECT event_id, count(*) FROM audit_log WHERE messaging_profile_id = %s"
                " GROUP BY event_id",
                (profile,),
            ).fetchall()
        )
        opted_out = conn.execute(
            "SELECT count(*) FROM subscribers WHERE messaging_profile_id = %s"
            " AND status = 'opted_out'",
            (profile,),
        ).fetchone()
        problems = conn.execute(
            "SELECT count(*) FROM webhook_events WHERE status IN ('failed', 'invalid')"
        ).fetchone()
        chain = audit_log.verify(conn)
    lost = report.accepted - set(per_event)
    assert not lost, f"{len(lost)} accepted events were never applied"
    assert all(n == 1 for n in per_event.values()), "an event was audited more than once"
    assert set(per_event) <= report.accepted | report.given_up
    assert opted_out is not None and opted_out[0] == len(per_event)
    assert problems is not None and problems[0] == 0
    assert chain.broken is None, chain.broken
    deliveries = sum(report.statuses.values())
    figures = {
        "events": EVENTS,
        "accepted": len(report.accepted),
        "given_up": len(report.given_up),
        "deliveries": deliveries,
        "duplicates_answered": report.bodies["duplicate"],
        "applied": len(per_event),
        "audit_rows_verified": chain.intact_rows,
        "settle_seconds": round(settled, 2),
    }
    restarts = {c.name: c.restarts for c in stack.supervisor.children} if stack.supervisor else {}
    print(json.dumps(figures | {"statuses": dict(report.statuses), "restarts": restarts}))
    return figures


def test_redis_killed_and_restarted_mid_load_loses_nothing(stack: Stack) -> None:
    profile = f"faults-redis-{uuid.uuid4().hex[:6]}"

    def kill_redis() -> None:
        stack.redis.stop(signal.SIGKILL)
        time.sleep(2.0)
        stack.redis.start(stack.redis_port)

    report = stream(stack, profile, kill_redis, fault_after=2.0)
    figures = settle_and_check(stack, profile, report)
    # The broker being down never turns Telnyx away: events are durable in PostgreSQL first.
    assert report.statuses[503] == 0 and figures["accepted"] == EVENTS


def test_worker_pool_processes_sigkilled_mid_task_lose_nothing(stack: Stack) -> None:
    profile = f"faults-worker-{uuid.uuid4().hex[:6]}"
    worker = psutil.Process(stack.worker_pid())
    killed: list[int] = []

    def kill_pool() -> None:
        for _ in range(4):
            # The prefork pool replaces a killed process in a moment: wait for it each time.
            children = wait_for(lambda: worker.children(recursive=True), timeout=30)
            for child in children:
                child.send_signal(signal.SIGKILL)
                killed.append(child.pid)
            time.sleep(0.7)

    report = stream(stack, profile, kill_pool, fault_after=1.5)
    figures = settle_and_check(stack, profile, report)
    assert killed, "no pool process was running to kill"
    assert figures["accepted"] == EVENTS
    print(json.dumps({"pool_processes_killed": len(killed)}))


def webhooks_answered(stack: Stack, outcome: str) -> float:
    """The receiver's own count of webhooks answered with ``outcome``, over all workers."""
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.web_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    prefix = f'optout_sync_webhooks_total{{outcome="{outcome}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


def test_postgres_stopped_and_restarted_mid_load_loses_nothing(stack: Stack) -> None:
    profile = f"faults-postgres-{uuid.uuid4().hex[:6]}"
    seen_while_down: Counter[int] = Counter()

    def restart_postgres() -> None:
        stack.postgres.stop("immediate")  # as if it crashed
        try:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                body = encode(
                    message_received(
                        text="STOP",
                        from_number="+13125559999",
                        to_number="+17735550188",
                        profile_id=f"{profile}-probe",
                    )
                )
                request = urllib.request.Request(
                    f"http://127.0.0.1:{stack.web_port}/webhooks/messaging",
                    data=body,
                    headers=sign(body, stack.key),
                    method="POST",
                )
                try:
                    with urllib.request.urlopen(request, timeout=1) as response:
                        seen_while_down[response.status] += 1
                except urllib.error.HTTPError as exc:
                    seen_while_down[exc.code] += 1
                except OSError:
                    seen_while_down[0] += 1
                time.sleep(0.3)
        finally:
            stack.postgres.start(stack.pg_port)

    unavailable_before = webhooks_answered(stack, "unavailable")
    report = stream(stack, profile, restart_postgres, fault_after=1.5)
    figures = settle_and_check(stack, profile, report)
    unavailable = webhooks_answered(stack, "unavailable") - unavailable_before
    print(
        json.dumps(
            {
                "answers_while_postgres_down": dict(seen_while_down),
                "answered_unavailable": unavailable,
            }
        )
    )
    # While the database was down the receiver answered 503, so Telnyx retried: its own count
    # says so whether or not a client waited for the answer under the load. And never 200.
    assert unavailable > 0
    assert seen_while_down[200] == 0, seen_while_down
    assert figures["accepted"] + figures["given_up"] == EVENTS


def test_worker_and_redis_killed_mid_delivery_lose_no_webhook(stack: Stack) -> None:
    """Webhooks in flight to a slow receiver when the whole worker and Redis are SIGKILLed:
    each change still reaches the receiver (at least once, with its one webhook-id)."""
    profile = f"faults-outbound-{uuid.uuid4().hex[:6]}"
    with webhook_receiver() as receiver:
        receiver.delay = 0.05  # 16 threads × 20/s: the backlog outlives the fault
        env = {"DATABASE_URL": stack.database_url, "ENDPOINTS_ALLOW_PRIVATE": "true"}
        added = CliRunner().invoke(
            main, ["endpoints", "add", receiver.url, "--profile", profile], env=env
        )
        assert added.exit_code == 0, added.output
        endpoint = added.output.split()[1]

        def kill_worker_and_redis() -> None:
            wait_for(lambda: len(receiver.received) > 50, timeout=60, interval=0.05)
            worker = psutil.Process(stack.worker_pid())
            for process in [*worker.children(recursive=True), worker]:
                process.kill()
            stack.redis.stop(signal.SIGKILL)
            time.sleep(1)
            stack.redis.start(stack.redis_port)

        report = stream(stack, profile, kill_worker_and_redis, fault_after=0.5)
        settle_and_check(stack, profile, report)

        def undelivered() -> int:
            with psycopg.connect(stack.database_url) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM outbox WHERE endpoint_id = %s AND status <> 'delivered'",
                    (endpoint,),
                ).fetchone()
            return int(row[0]) if row else -1

        wait_for(lambda: undelivered() == 0, timeout=180, interval=0.5)
        with psycopg.connect(stack.database_url) as conn:
            seqs = [
                seq
                for (seq,) in conn.execute(
                    "SELECT seq FROM audit_log WHERE messaging_profile_id = %s", (profile,)
                )
            ]
        expected = {webhook_id(endpoint, seq) for seq in seqs}
        arrived = [r.headers["webhook-id"] for r in receiver.delivered()]
    assert expected and set(arrived) == expected
    print(
        json.dumps(
            {
                "webhooks": len(expected),
                "deliveries": len(arrived),
                "redelivered": len(arrived) - len(set(arrived)),
            }
        )
    )
