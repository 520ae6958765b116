"""`optout-sync bench`: figures against baselines measured in the same run (spec §8).

Each benchmark works in a scratch database it creates on the server of DATABASE_URL (or the
embedded one) and drops afterwards, so it never touches real subscribers; the receiver and
lag benchmarks also use a Celery queue of their own on the broker, emptied afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from app.devtools.bench.common import SIZES, Context, Figure, scratch_database
from app.devtools.bench.console import bench_console
from app.devtools.bench.database import (
    bench_can_send,
    bench_changes,
    bench_classify,
    bench_export,
    bench_import,
    bench_intake,
    bench_worker,
    fill_audit_rows,
)
from app.devtools.bench.http import bare_app, bench_lag, bench_receiver
from app.devtools.bench.outbound import bench_outbound
from app.devtools.bench.scale import bench_scale

__all__ = ["BENCHMARKS", "SIZES", "Context", "Figure", "bare_app", "fill_audit_rows", "run"]

BENCHMARKS: dict[str, Callable[[Context, str], list[Figure]]] = {
    "receiver": bench_receiver,
    "worker": bench_worker,
    "lag": bench_lag,
    "can-send": bench_can_send,
    "export": bench_export,
    "classify": bench_classify,
    "intake": bench_intake,
    "import": bench_import,
    "changes": bench_changes,
    "outbound": bench_outbound,
    "console": bench_console,
    "scale": bench_scale,
}


def run(ctx: Context, names: list[str]) -> Iterator[Figure]:
    for name in names:
        with scratch_database(ctx.server_url) as url:
            yield from BENCHMARKS[name](ctx, url)
