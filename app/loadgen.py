"""A small HTTP load generator for `optout-sync bench` when wrk is not installed.

It sends prepared raw HTTP/1.1 requests, one per connection (gunicorn's sync workers close
the connection after each answer), either closed-loop (N clients as fast as answers come:
the peak) or open-loop (a fixed rate: latency measured from when each request was due, so a
stalled server cannot hide its queue). The same generator drives every app it compares.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests
    statuses: Counter[int] = field(default_factory=Counter)  # 0: no answer (connection error)

    @property
    def answered(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def http_post(path: str, body: bytes, headers: dict[str, str], host: str = "bench") -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _exchange(host: str, port: int, request: bytes) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        status_line = await reader.readline()
        await reader.read()  # the server closes after its answer
        parts = status_line.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    finally:
        writer.close()


async def _closed_loop(
    host: str, port: int, requests: Iterator[bytes], clients: int, seconds: float
) -> LoadResult:
    result = LoadResult()
    started = time.perf_counter()
    deadline = started + seconds

    async def client() -> None:
        for request in requests:
            sent = time.perf_counter()
            if sent >= deadline:
                return
            try:
                status = await _exchange(host, port, request)
            except OSError:
                status = 0
            result.statuses[status] += 1
            if status:
                result.latencies.append(time.perf_counter() - sent)

    await asyncio.gather(*(client() for _ in range(clients)))
    result.seconds = time.perf_counter() - started
    return result


async def _open_loop(
    host: str, port: int, requests: Iterator[bytes], rate: float, seconds: float
) -> LoadResult:
    result = LoadResult()
    started = time.perf_counter()
    total = int(rate * seconds)
    in_flight: set[asyncio.Task[None]] = set()

    async def one(request: bytes, due: float) -> None:
        try:
            status = await _exchange(host, port, request)
        except OSError:
            status = 0
        result.statuses[status] += 1
        if status:
            result.latencies.append(time.perf_counter() - due)

    for index, request in zip(range(total), requests, strict=False):
        due = started + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(request, due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight)
    result.seconds = time.perf_counter() - started
    return result


def closed_loop(
    host: str, port: int, requests: Iterator[bytes], clients: int, seconds: float
) -> LoadResult:
    """As many requests as ``clients`` concurrent clients get answered in ``seconds``."""
    return asyncio.run(_closed_loop(host, port, requests, clients, seconds))


def open_loop(
    host: str, port: int, requests: Iterator[bytes], rate: float, seconds: float
) -> LoadResult:
    """``rate`` requests a second for ``seconds``, whatever the answers."""
    return asyncio.run(_open_loop(host, port, requests, rate, seconds))
