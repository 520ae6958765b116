"""A webhook receiver for development and benchmarks: answers 200 to every POST and, with
--log, appends "<webhook-id> <unix time>" per request to a file.

    python -m app.devtools.webhook_sink --port 9000 [--log FILE]
    optout-sync endpoints add http://127.0.0.1:9000/ (ENDPOINTS_ALLOW_PRIVATE, as `dev` sets)
"""

from __future__ import annotations

import argparse
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO


def serve(port: int, log: IO[str] | None) -> None:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the sender reuses its connections

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            arrived = time.time()
            if log is not None:
                with lock:
                    log.write(f"{self.headers.get('webhook-id')} {arrived:.6f}\n")
                    log.flush()
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", default=None, help="append '<webhook-id> <unix time>' here")
    args = parser.parse_args()
    if args.log:
        with open(args.log, "a", encoding="utf-8") as log:
            serve(args.port, log)
    else:
        serve(args.port, None)


if __name__ == "__main__":
    main()
