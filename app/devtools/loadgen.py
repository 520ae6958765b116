"""HTTP load for `optout-sync bench`: wrk when installed, else a small built-in generator.

It sends prepared raw HTTP/1.1 requests, one per connection (each asks the server to close
it after the answer, as a new sender would), either closed-loop (N clients as fast as answers come:
the peak) or open-loop (a fixed rate: latency measured from when each request was due, so a
stalled server cannot hide its queue). The same generator drives every app it compares.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


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
    lines.append("Connection: close")
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


async def _send(result: LoadResult, host: str, port: int, request: bytes, since: float) -> None:
    """One request; its latency counts from ``since`` (when it was sent, or was due)."""
    try:
        status = await _exchange(host, port, request)
    except OSError:
        status = 0
    result.statuses[status] += 1
    if status:
        result.latencies.append(time.perf_counter() - since)


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
            await _send(result, host, port, request, since=sent)

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

    for index, request in zip(range(total), requests, strict=False):
        due = started + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(_send(result, host, port, request, since=due))
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


# wrk, when installed, generates load in C at a fraction of this module's cost per request.
# Each of its threads sends its own share of the prepared requests, in order.
_WRK_SCRIPT = """
local counter, threads = 0, {}
function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end
function init(args)
  local file = assert(io.open(args[1], "rb"))
  local data = file:read("*a")
  file:close()
  local share, position, index = tonumber(args[2]), 1, 0
  mine, next_one = {}, 1
  while position <= #data do
    local newline = string.find(data, "\\n", position, true)
    local length = tonumber(string.sub(data, position, newline - 1))
    if index % share == id then
      table.insert(mine, string.sub(data, newline + 1, newline + length))
    end
    position, index = newline + 1 + length, index + 1
  end
end
function request()
  local raw = mine[next_one] or mine[#mine]
  next_one = next_one + 1
  return raw
end
function done(summary, latency, requests)
  io.write(string.format("OPTOUT_SYNC %d %d %d %d %d\\n", summary.requests, summary.duration,
    summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int  # non-2xx/3xx answers and socket errors
    p50: float
    p99: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk_closed_loop(
    port: int, requests: list[bytes], clients: int, seconds: float, threads: int = 2
) -> WrkResult:
    """Like closed_loop, with wrk: ``clients`` connections over ``threads`` threads."""
    with tempfile.TemporaryDirectory(prefix="optout-sync-wrk-") as folder:
        script, data = Path(folder) / "requests.lua", Path(folder) / "requests.bin"
        script.write_text(_WRK_SCRIPT)
        with data.open("wb") as out:
            for request in requests:
                out.write(b"%d\n" % len(request) + request)
        completed = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{max(clients, threads)}",
                f"-d{max(1, round(seconds))}s",
                "--latency",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}",
                "--",
                str(data),
                str(threads),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    line = next(x for x in completed.stdout.splitlines() if x.startswith("OPTOUT_SYNC "))
    count, micros, errors, p50, p99 = (int(x) for x in line.split()[1:])
    return WrkResult(count, micros / 1e6, errors, p50 / 1e6, p99 / 1e6)
