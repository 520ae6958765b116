"""What every benchmark shares: figures, sizes, a scratch database, the traffic mix.

Each benchmark works in a scratch database it creates on the server of DATABASE_URL (or the
embedded one) and drops afterwards, so it never touches real subscribers; the receiver and
lag benchmarks also use a Celery queue of their own on the broker, emptied afterwards.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from nacl.signing import SigningKey

from app.devtools import loadgen
from app.devtools.simulate import encode, message_received, sign
from app.services import operations
from app.store import migrations


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
            f"{self.name:<18} {self.value:>12,.1f} {self.unit:<10} baseline {self.baseline_name}: "
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
    import_rows: int
    console_subscribers: int
    scale_rows: int


SIZES = {
    "tiny": Size(400, 200, 2_000, 1.0, 4, 40.0, 2.0, 2_000, 5_000, 20_000),
    "full": Size(
        100_000, 10_000, 1_000_000, 8.0, 16, 1_000.0, 60.0, 1_000_000, 1_000_000, 10_000_000
    ),
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
            operations.ensure_partitions(conn)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def phone_numbers(count: int, area: int = 312) -> list[str]:
    """Distinct numbers, valid in the given area code (exchanges 200 onwards)."""
    return [f"+1{area}{200 + i // 10000:03d}{i % 10000:04d}" for i in range(count)]


LONG_CODE = "+17735550188"
TOLL_FREE = "+18885550123"
# What follows a campaign, in twenty: keyword opt-outs in their usual spellings, opt-ins,
# HELP, a phrase held for review, and chatter that is no keyword at all (each one unique).
TRAFFIC = (
    ["STOP"] * 5
    + ["Stop", "stop", "STOP.", "Stop please", "UNSUBSCRIBE", "cancel", "quit"]
    + ["START", "UNSTOP", "HELP", "please stop texting me"]
    + ["chatter"] * 4
)


def traffic_text(index: int) -> str:
    text = TRAFFIC[index % len(TRAFFIC)]
    return f"Thanks! See you at {index % 12 + 1} ({index})" if text == "chatter" else text


def stop_payload(number: str) -> dict[str, Any]:
    return message_received(
        text="STOP", from_number=number, to_number=LONG_CODE, profile_id="bench"
    )


def signed_requests(key: SigningKey, count: int, area: int) -> list[bytes]:
    requests = []
    for number in phone_numbers(count, area):
        body = encode(stop_payload(number))
        requests.append(loadgen.http_post("/webhooks/messaging", body, sign(body, key)))
    return requests
