"""Neurometric pieces on hand-made inputs: subsets, intervals, windows, half-max, areas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from npdecode.analyses.neurometric import (
    ALL,
    area_columns,
    draw_subsets,
    half_max_time,
    interval,
    time_windows,
)
from npdecode.errors import DataError


def test_subsets_are_drawn_without_replacement_and_seeded() -> None:
    a = draw_subsets(20, 8, 5, seed=0, area="VISp")
    assert a.shape == (5, 8)
    for row in a:
        assert len(set(row.tolist())) == 8  # no unit twice in a subset
        assert row.min() >= 0 and row.max() < 20 and (np.diff(row) > 0).all()
    assert len({tuple(r) for r in a.tolist()}) == 5  # the subsets differ
    np.testing.assert_array_equal(a, draw_subsets(20, 8, 5, seed=0, area="VISp"))
    assert not np.array_equal(a, draw_subsets(20, 8, 5, seed=1, area="VISp"))
    assert not np.array_equal(a, draw_subsets(20, 8, 5, seed=0, area="VISl"))
    # more subsets extend, never change, the first ones: each is seeded on its own
    np.testing.assert_array_equal(a, draw_subsets(20, 8, 7, seed=0, area="VISp")[:5])
    assert sorted(draw_subsets(6, 6, 1, seed=0, area="LGd")[0].tolist()) == list(range(6))
    with pytest.raises(ValueError, match="cannot draw 7 of 6"):
        draw_subsets(6, 7, 1, seed=0, area="LGd")


def test_interval_is_the_mean_with_a_bootstrap_interval_around_it() -> None:
    rng = np.random.default_rng(0)
    correct = rng.random(400) < 0.3
    out = interval(correct, 2000, np.random.default_rng(1))
    assert out["accuracy"] == pytest.approx(correct.mean())
    half = 1.96 * np.sqrt(0.3 * 0.7 / 400)  # the binomial interval's half-width
    assert out["ci_low"] < out["accuracy"] < out["ci_high"]
    assert out["ci_high"] - out["ci_low"] == pytest.approx(2 * half, rel=0.15)
    assert interval(correct, 2000, np.random.default_rng(1)) == out  # seeded
    assert interval(np.ones(50, bool), 100, rng) == {
        "accuracy": 1.0,
        "ci_low": 1.0,
        "ci_high": 1.0,
    }


def test_interval_over_subsets_widens_with_their_spread() -> None:
    rng = np.random.default_rng(0)
    alike = np.stack([rng.random(300) < 0.5 for _ in range(5)])
    spread = np.stack([rng.random(300) < p for p in (0.1, 0.3, 0.5, 0.7, 0.9)])
    a = interval(alike, 2000, np.random.default_rng(2))
    b = interval(spread, 2000, np.random.default_rng(2))
    assert a["accuracy"] == pytest.approx(alike.mean()) and b["accuracy"] == pytest.approx(
        spread.mean()
    )
    assert b["ci_high"] - b["ci_low"] > 2 * (a["ci_high"] - a["ci_low"])


def test_time_windows_first_bins_and_sliding() -> None:
    w = time_windows(10, (1, 2, 6, 12), 3)
    assert w["first"] == [(0, 1), (0, 2), (0, 6), (0, 10)]  # 12 > 10 bins dropped, all added
    assert w["window"] == [(s, s + 3) for s in range(8)]
    assert time_windows(5, (1,), None)["window"] == []
    assert time_windows(5, (1,), 5)["window"] == []  # one window = the full one


def _first(stops, accs, ci_low=None):
    return [
        {"stop_s": t, "accuracy": a, "ci_low": a if ci_low is None else ci_low}
        for t, a in zip(stops, accs, strict=True)
    ]


def test_half_max_time_interpolates_from_chance_at_onset() -> None:
    chance = 0.1
    # full window 0.5: half-way is 0.3, reached between 50 ms (0.2) and 100 ms (0.4)
    assert half_max_time(_first([0.05, 0.1, 0.25], [0.2, 0.4, 0.5]), chance) == pytest.approx(0.075)
    # reached already in the first window: interpolated from (0 s, chance)
    assert half_max_time(_first([0.05, 0.25], [0.5, 0.5]), chance) == pytest.approx(0.025)
    # no decoding in the full window: no time
    assert half_max_time(_first([0.05, 0.25], [0.1, 0.12], ci_low=0.09), chance) is None


def test_area_columns_all_first_then_hierarchy_and_patterns() -> None:
    units = pd.DataFrame({"area": ["CA1", "VISl", "LGd", "VISp", "VISl", "grey", "LGd"]})
    cols = area_columns(units, (), 7)
    assert list(cols) == [ALL, "LGd", "VISp", "VISl", "CA1", "grey"]
    assert cols[ALL].tolist() == list(range(7))
    assert cols["LGd"].tolist() == [2, 6] and cols["VISl"].tolist() == [1, 4]
    assert list(area_columns(units, ("VIS*",), 7)) == [ALL, "VISp", "VISl"]
    with pytest.raises(DataError, match=r"session 7 has no units in area 'VISam'.*LGd, VISp"):
        area_columns(units, ("VISam",), 7)
    with pytest.raises(DataError, match="session 7: the split's units.parquet has no 'area'"):
        area_columns(pd.DataFrame({"unit_id": [1]}), (), 7)
