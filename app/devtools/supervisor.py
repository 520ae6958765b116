"""The one process runner: the Procfile's processes side by side, each its own process group,
for `optout-sync dev` (restarting any that dies), the benchmarks and the tests (which start
and stop them around their work)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

RESTART_DELAY_SECONDS = 2.0


# The Procfile at the top of a source checkout; an installed wheel has none.
CHECKOUT_PROCFILE = Path(__file__).resolve().parents[2] / "Procfile"


def read_procfile(path: Path = CHECKOUT_PROCFILE) -> dict[str, str]:
    """The processes of a Procfile by name. `dev` and `bench` run from a source checkout."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: `optout-sync dev` and `bench` run from a source checkout"
            " (git clone, then `make run`)"
        )
    processes = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and ":" in line:
            name, command = line.split(":", 1)
            processes[name.strip()] = command.strip()
    return processes


@dataclass
class Child:
    name: str
    command: str
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0


def _pump(name: str, stream: IO[bytes], out: IO[str]) -> None:
    for raw in iter(stream.readline, b""):
        out.write(f"{name:>6} | {raw.decode(errors='replace')}")
        out.flush()


class Supervisor:
    def __init__(
        self,
        commands: dict[str, str],
        env: dict[str, str],
        log_dir: Path | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.children = [Child(name, command) for name, command in commands.items()]
        self.env = env
        self.log_dir = log_dir  # None: prefixed lines on our stdout
        self.cwd = cwd
        self.stopping = threading.Event()

    def __enter__(self) -> Supervisor:
        """Start every child, without restarts; leaving the block stops them all."""
        for child in self.children:
            self._start(child)
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def log(self, name: str) -> str:
        """What a child has written so far (when the children log to files)."""
        path = self.log_dir / f"{name}.log" if self.log_dir else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def exited(self) -> list[str]:
        """The children that are no longer running."""
        return [c.name for c in self.children if c.process and c.process.poll() is not None]

    def _start(self, child: Child) -> None:
        # Each child leads its own process group so Ctrl-C reaches gunicorn's and Celery's
        # workers too, and only through us.
        if self.log_dir is not None:
            with (self.log_dir / f"{child.name}.log").open("ab") as log:
                child.process = subprocess.Popen(
                    ["/bin/sh", "-c", f"exec {child.command}"],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd=self.cwd,
                )
        else:
            child.process = subprocess.Popen(
                ["/bin/sh", "-c", f"exec {child.command}"],
                env=self.env,
                cwd=self.cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            assert child.process.stdout is not None
            threading.Thread(
                target=_pump, args=(child.name, child.process.stdout, sys.stdout), daemon=True
            ).start()

    def run(self, handle_signals: bool = True) -> int:
        """Start every child and restart any that dies until stop() (or Ctrl-C)."""
        previous = {
            sig: signal.signal(sig, lambda *_: self.stopping.set())
            for sig in ((signal.SIGINT, signal.SIGTERM) if handle_signals else ())
        }
        try:
            for child in self.children:
                self._start(child)
            while not self.stopping.wait(0.5):
                for child in self.children:
                    assert child.process is not None
                    code = child.process.poll()
                    if code is not None and not self.stopping.is_set():
                        self._note(child, f"exited with {code}; restarting")
                        time.sleep(RESTART_DELAY_SECONDS)
                        child.restarts += 1
                        self._start(child)
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def stop(self, grace_seconds: float = 15.0) -> None:
        self.stopping.set()
        for child in self.children:
            if child.process and child.process.poll() is None:
                os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()

    def _note(self, child: Child, text: str) -> None:
        if self.log_dir is not None:
            with (self.log_dir / "supervisor.log").open("a") as log:
                log.write(f"{child.name}: {text}\n")
        else:
            print(f"{child.name:>6} | {text}", flush=True)

    def process(self, name: str) -> subprocess.Popen[bytes] | None:
        return next((c.process for c in self.children if c.name == name), None)
