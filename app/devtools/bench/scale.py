"""bench scale (issue 19): the receiver and the worker with a deployment's worth of inbox
behind them, against the same on an empty inbox in the same run; what retention costs for
a day; and how big the tables are.

The mix is a steady state of about a million messages sent a day: for every reply, fifty
delivery receipts. Receipts live RECEIPT_RETENTION_HOURS (three days here, in
delivery_receipts); replies WEBHOOK_RETENTION_DAYS (ninety, in the inbox, with their body).
"""

from __future__ import annotations

import statistics
import time

import psycopg

from app.devtools import loadgen
from app.devtools.bench.common import (
    Context,
    Figure,
    phone_numbers,
    scratch_database,
    signed_requests,
)
from app.devtools.bench.database import drain_seconds, queue_replies
from app.devtools.bench.http import (
    _forget_queue,
    _procfile,
    _requests_for,
    _serve_and_load,
    _Servers,
)
from app.devtools.simulate import encode, message_received
from app.store import inbox, partitions, receipts

RECEIPTS_PER_REPLY = 50
ROUNDS, DRAINS = 2, 2  # of each state; a single load or drain varies by ±10% on a small VM
# Real area codes (numbers must be valid), one per load and per drain.
AREA_CODES = (212, 213, 310, 312, 404, 415, 503, 512, 602, 617, 713, 718, 805, 818, 904, 917)
RECEIPT_DAYS, REPLY_DAYS = 3, 90


def fill(conn: psycopg.Connection, rows: int) -> tuple[int, int]:
    """Receipts over the last RECEIPT_DAYS and processed replies over REPLY_DAYS, ``rows``
    in all, written in bulk; returns (receipts, replies)."""
    per_day = rows / (RECEIPT_DAYS + REPLY_DAYS / RECEIPTS_PER_REPLY)  # receipts a day
    receipt_rows, reply_rows = int(per_day * RECEIPT_DAYS), rows - int(per_day * RECEIPT_DAYS)
    body = encode(
        message_received(
            text="Thanks! See you at 5", from_number="+13125550100", to_number="+17735550188"
        )
    )
    receipts.PARTITIONS.ensure(conn, days_back=RECEIPT_DAYS)
    inbox.PARTITIONS.ensure(conn, days_back=REPLY_DAYS)
    conn.execute(
        "INSERT INTO delivery_receipts (event_id, event_type, received_at, signed_at)"
        " SELECT 'receipt-' || g, 'message.finalized',"
        "   now() - interval '1 day' * %(days)s * g / %(n)s, 1733500000"
        " FROM generate_series(1, %(n)s) g",
        {"days": RECEIPT_DAYS - 0.01, "n": receipt_rows},
    )
    conn.execute(
        "INSERT INTO webhook_events (pk, event_id, event_type, status, raw_body, received_at,"
        "  processed_at, attempts, outcome)"
        " SELECT webhook_events_next_pk(at), 'reply-' || g, 'message.received', 'processed',"
        "   replace(%(body)s::text, 'Thanks!', 'Thanks ' || g || '!')::bytea, at, at, 1,"
        "   'opt_out'"
        " FROM generate_series(1, %(n)s) g,"
        "   LATERAL (SELECT now() - interval '1 day' * %(days)s * g / %(n)s AS at) AS received",
        {"body": body.decode(), "days": REPLY_DAYS - 0.01, "n": reply_rows},
    )
    conn.commit()
    return receipt_rows, reply_rows


def _age_replies(conn: psycopg.Connection, count: int, days: int) -> None:
    """Make ``count`` of today's processed replies look ``days`` old, for a batched delete."""
    conn.execute(
        "UPDATE webhook_events SET received_at = now() - make_interval(days => %s)"
        " WHERE pk IN (SELECT pk FROM webhook_events WHERE pk >= %s AND status = 'processed'"
        "   LIMIT %s)",
        (days, inbox.day_pk(partitions.today()), count),
    )


def _sizes(conn: psycopg.Connection) -> str:
    sizes = [
        conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(relid)), 0)"
            " FROM pg_partition_tree(%s::regclass)",  # a partitioned table's own size is 0
            (table,),
        ).fetchone()
        or (0,)
        for table in ("webhook_events", "delivery_receipts")
    ]
    (inbox_bytes,), (receipt_bytes,) = sizes
    return f"inbox {inbox_bytes / 2**30:.2f} GiB, receipts {receipt_bytes / 2**30:.2f} GiB"


def bench_scale(ctx: Context, url: str) -> list[Figure]:
    rows = ctx.size.scale_rows
    servers = _Servers.for_run(url, ctx.broker_url, "scale")
    use_wrk = ctx.generator == "wrk" or (ctx.generator == "auto" and loadgen.wrk_available())
    web, size = _procfile()["web"], ctx.size
    events = ctx.size.worker_events
    areas = iter(AREA_CODES)  # every load its own numbers: replies from new subscribers

    def measure(database: str) -> tuple[float, list[float]]:
        env = {**servers.env, "DATABASE_URL": database}
        requests = signed_requests(servers.key, _requests_for(size, 2000.0), next(areas))
        peak = _serve_and_load(web, env, servers.port, requests, size, use_wrk).peak_rate
        drains = []
        for _ in range(DRAINS):
            queue_replies(database, phone_numbers(events, area=next(areas)))
            drains.append(events / drain_seconds(ctx, database))
        return peak, drains

    peaks: dict[str, list[float]] = {"empty": [], "filled": []}
    drains: dict[str, list[float]] = {"empty": [], "filled": []}
    with scratch_database(ctx.server_url) as filled:
        with psycopg.connect(filled, autocommit=True) as conn:
            started = time.perf_counter()
            receipt_rows, reply_rows = fill(conn, rows)
            filled_in = time.perf_counter() - started
            conn.execute("VACUUM ANALYZE webhook_events")
            conn.execute("VACUUM ANALYZE delivery_receipts")
            # A live inbox wrote its rows over ninety days: do not measure while the fill's
            # gigabytes are still being flushed.
            conn.execute("CHECKPOINT")
            sizes = _sizes(conn)
        try:
            # Empty, filled, empty, filled: each state runs first once and grows alike.
            for _ in range(ROUNDS):
                for state, database in (("empty", url), ("filled", filled)):
                    peak, rates = measure(database)
                    peaks[state].append(peak)
                    drains[state].extend(rates)
        finally:
            _forget_queue(servers.env["REDIS_URL"], servers.queue)
        retention = _retention(filled, receipt_rows, reply_rows)
    detail = (
        f"{rows:,} rows ({receipt_rows:,} receipts, {reply_rows:,} replies)"
        f" filled in {filled_in:.0f} s; {sizes}"
    )
    return [
        _against_empty("scale-receiver", "req/s", peaks, f"median of {ROUNDS} loads each", detail),
        _against_empty(
            "scale-worker",
            "events/s",
            drains,
            f"median of {ROUNDS * DRAINS} drains of {events:,} replies each",
        ),
        retention,
    ]


def _against_empty(
    name: str, unit: str, figures: dict[str, list[float]], how: str, detail: str = ""
) -> Figure:
    """The filled database's median against the empty one's, with every figure listed."""
    listed = "; ".join(
        f"{state} {', '.join(f'{figure:,.0f}' for figure in values)}"
        for state, values in figures.items()
    )
    return Figure(
        name,
        statistics.median(figures["filled"]),
        unit,
        "empty inbox",
        statistics.median(figures["empty"]),
        True,
        f"{how}: {listed}" + (f"; {detail}" if detail else ""),
    )


def _retention(url: str, receipt_rows: int, reply_rows: int) -> Figure:
    with psycopg.connect(url, autocommit=True) as conn:
        # The oldest day of each, as retention takes it: replies as a partition drop, then the
        # same number of replies deleted in batches, as retention did before (and still does
        # in the legacy partition); receipts as a partition drop.
        started = time.perf_counter()
        days = inbox.drop_expired_days(conn, REPLY_DAYS - 1)
        day_seconds = time.perf_counter() - started
        day_rows = reply_rows // REPLY_DAYS
        _age_replies(conn, day_rows, REPLY_DAYS + 1)
        conn.execute("VACUUM ANALYZE webhook_events")  # no dead versions left by the ageing
        started = time.perf_counter()
        pruned = inbox.prune(conn, REPLY_DAYS)
        prune_seconds = time.perf_counter() - started
        started = time.perf_counter()
        dropped = receipts.drop_expired(conn, 24 * (RECEIPT_DAYS - 1))
        receipt_seconds = time.perf_counter() - started
    return Figure(
        "scale-retention",
        day_seconds * 1000 / max(len(days.partitions), 1),
        "ms",
        "the same replies deleted in batches",
        prune_seconds * 1000,
        False,
        f"a day of replies ({day_rows:,} rows) dropped as a partition, against"
        f" {sum(pruned.removed.values()):,} replies deleted in batches; a day of receipts"
        f" ({receipt_rows // RECEIPT_DAYS:,} rows) dropped in"
        f" {receipt_seconds * 1000 / max(len(dropped), 1):.1f} ms",
    )
