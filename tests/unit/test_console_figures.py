"""The figures the console draws: quantiles from histogram buckets, bar geometry, spans of
time written for people."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from app.store.counters import quantile
from app.web.chart import bar_chart
from app.web.console import duration

INF = float("inf")


def test_quantiles_interpolate_within_the_bucket_they_fall_in() -> None:
    # 100 observations: 50 under 0.1 s, 40 more under 1 s, 10 more under 10 s.
    buckets = [(0.1, 50.0), (1.0, 90.0), (10.0, 100.0), (INF, 100.0)]
    assert quantile(buckets, 0.5) == pytest.approx(0.1)
    assert quantile(buckets, 0.7) == pytest.approx(0.1 + 0.9 * 20 / 40)
    assert quantile(buckets, 0.99) == pytest.approx(1.0 + 9.0 * 9 / 10)
    assert quantile(buckets, 0.25) == pytest.approx(0.05)  # the first bucket starts at 0


def test_a_quantile_past_the_last_bound_is_that_bound_and_none_without_observations() -> None:
    assert quantile([(1.0, 1.0), (INF, 10.0)], 0.99) == 1.0
    assert quantile([(1.0, 0.0), (INF, 0.0)], 0.5) is None
    assert quantile([], 0.5) is None


def test_bars_scale_to_the_busiest_day_and_keep_empty_days() -> None:
    start = date(2026, 12, 1)
    chart = bar_chart([(start + timedelta(days=i), n) for i, n in enumerate([0, 5, 10])])
    heights = [bar.height for bar in chart.bars]
    assert heights == [0.0, chart.baseline / 2, chart.baseline]
    assert [bar.y + bar.height for bar in chart.bars] == [chart.baseline] * 3
    assert (chart.peak, chart.total) == (10, 15)
    assert chart.bars[2].x > chart.bars[1].x > chart.bars[0].x >= 0
    assert bar_chart([(start, 0)]).bars[0].height == 0.0  # no division by a zero peak


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "–"),
        (0.0123, "12 ms"),
        (3.21, "3.2 s"),
        (303, "5 min 3 s"),
        (7500, "2 h 5 min"),
        (273600, "3 d 4 h"),
    ],
)
def test_durations_read_as_a_person_would_say_them(seconds: float | None, shown: str) -> None:
    assert duration(seconds) == shown
