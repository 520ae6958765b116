"""The HTTP side of delivery: POST a signed webhook to a receiver, reusing connections.

Each delivery resolves and checks the URL again (addresses.resolve) and connects to the
address it checked, with the URL's host name for TLS and the Host header; a connection pool
per (address, host) lets consecutive deliveries to one receiver reuse their connections.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import urllib3

from app.outbound.addresses import Target, UnsafeUrl, resolve
from app.outbound.messages import TIMEOUT_SECONDS

_ANSWER_BYTES = 500  # of the receiver's answer, kept for `endpoints test` and attempts


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer (refused, timed out, unsafe URL)
    error: str | None
    body: str
    seconds: float


class Sender:
    def __init__(self, allow_private: bool = False, timeout: float = TIMEOUT_SECONDS) -> None:
        self.allow_private = allow_private
        self.timeout = urllib3.Timeout(total=timeout)
        self._pools: dict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = {}
        self._lock = threading.Lock()

    def post(self, url: str, headers: dict[str, str], body: bytes) -> Answer:
        started = time.perf_counter()
        try:
            target = resolve(url, self.allow_private)
            response = self._pool(target).urlopen(
                "POST",
                target.path,
                body=body,
                headers={**headers, "host": _host_header(target)},
                retries=False,
                redirect=False,  # a redirect could lead anywhere: it is a failed attempt
                timeout=self.timeout,
                preload_content=False,
            )
            try:
                answer = response.read(_ANSWER_BYTES, decode_content=True)
                response.drain_conn()  # read the rest, so the connection can be reused
            finally:
                response.release_conn()
            elapsed = time.perf_counter() - started
            text = answer.decode("utf-8", "replace")
            return Answer(response.status, None, text, elapsed)
        except UnsafeUrl as exc:
            return Answer(None, f"unsafe URL: {exc}", "", time.perf_counter() - started)
        except urllib3.exceptions.HTTPError as exc:
            return Answer(None, _reason(exc), "", time.perf_counter() - started)

    def _pool(self, target: Target) -> urllib3.HTTPConnectionPool:
        key = (target.scheme, target.address, target.port, target.host)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                if target.scheme == "https":
                    pool = urllib3.HTTPSConnectionPool(
                        target.address,
                        target.port,
                        maxsize=16,
                        block=False,
                        server_hostname=target.host,
                        assert_hostname=target.host,
                        cert_reqs="CERT_REQUIRED",
                    )
                else:
                    pool = urllib3.HTTPConnectionPool(
                        target.address, target.port, maxsize=16, block=False
                    )
                self._pools[key] = pool
            return pool

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()


def _host_header(target: Target) -> str:
    default = 443 if target.scheme == "https" else 80
    return target.host if target.port == default else f"{target.host}:{target.port}"


def _reason(exc: Exception) -> str:
    # urllib3 wraps the cause: name the innermost one ("connection refused", "timed out").
    reason = getattr(exc, "reason", None) or exc
    return f"{type(reason).__name__}: {reason}"[:300]
