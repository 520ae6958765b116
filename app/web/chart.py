"""A bar chart drawn as SVG on the server: no script, nothing from a CDN (spec §14)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

WIDTH, HEIGHT = 600, 160
AXIS = 24  # room under the bars for the first and last day's labels


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: date
    value: int


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    baseline: float
    bars: list[Bar]
    peak: int
    total: int


def bar_chart(points: list[tuple[date, int]]) -> BarChart:
    """One bar per day, scaled to the busiest day; a day with none keeps its slot."""
    peak = max((value for _, value in points), default=0)
    baseline = HEIGHT - AXIS
    slot = WIDTH / max(len(points), 1)
    bars = []
    for index, (day, value) in enumerate(points):
        height = baseline * value / peak if peak else 0.0
        bars.append(Bar(index * slot + 1, baseline - height, slot - 2, height, day, value))
    return BarChart(WIDTH, HEIGHT, baseline, bars, peak, sum(v for _, v in points))
