"""`optout-sync bench`: figures against same-run baselines."""

from __future__ import annotations

import os

import click

from app.cli.common import (
    embedded_redis,
    load_settings,
    resolve_database_url,
)


@click.command(help="Measure against baselines taken in the same run (scratch database).")
@click.argument(
    "names",
    nargs=-1,
    type=click.Choice(
        [
            "receiver",
            "worker",
            "lag",
            "can-send",
            "export",
            "classify",
            "intake",
            "import",
            "changes",
            "outbound",
            "console",
            "scale",
            "all",
        ]
    ),
)
@click.option(
    "--size",
    type=click.Choice(["tiny", "full"]),
    default="full",
    show_default=True,
    help="tiny: a smoke run in seconds; full: the sizes of spec §8.",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=os.cpu_count() or 1,
    show_default=True,
    help="Worker processes draining the backlog (Celery's prefork default).",
)
@click.option(
    "--generator",
    type=click.Choice(["auto", "wrk", "builtin"]),
    default="auto",
    show_default=True,
    help="HTTP load for the receiver: auto uses wrk when installed.",
)
def bench(names: tuple[str, ...], size: str, processes: int, generator: str) -> None:
    from app.devtools import bench as benchmarks

    chosen = list(benchmarks.BENCHMARKS) if not names or "all" in names else list(names)
    settings = load_settings()
    url = resolve_database_url(settings)
    broker_url = settings.broker_url
    if not broker_url and {"receiver", "lag", "outbound", "scale"} & set(chosen):
        broker_url = embedded_redis(settings)
    context = benchmarks.Context(
        # The scratch databases live on the same server: connect to its maintenance database.
        server_url=url.rsplit("/", 1)[0] + "/postgres",
        broker_url=broker_url,
        size=benchmarks.SIZES[size],
        processes=processes,
        generator=generator,
        batch_size=settings.worker_batch_size,
    )
    click.echo(f"optout-sync bench ({size}): figure, baseline from the same run, ratio")
    for figure in benchmarks.run(context, chosen):
        click.echo(figure.line())
