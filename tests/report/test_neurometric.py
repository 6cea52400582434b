"""Pooling over sessions and the unit count areas are compared at."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy import stats

from npdecode.report.neurometric import matched_units, pool, pooled_curve


def _points(acc: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {"accuracy": acc, "ci_low": [a - 0.01 for a in acc], "ci_high": [a + 0.01 for a in acc]}
    )


def test_pool_is_a_t_interval_across_sessions_or_one_session_own() -> None:
    one = pool(_points([0.3]))
    assert (one["mean"], one["low"], one["high"], one["k"]) == (0.3, 0.29, 0.31, 1)
    acc = [0.2, 0.3, 0.4, 0.5]
    p = pool(_points(acc))
    half = stats.t.ppf(0.975, 3) * pd.Series(acc).std() / 2
    assert p["mean"] == pytest.approx(0.35) and p["high"] - p["mean"] == pytest.approx(half)
    near_zero = pool(_points([0.0, 0.001, 0.03]))
    assert near_zero["low"] == 0.0  # accuracy intervals stay in [0, 1]


def test_pooled_curve_keeps_points_most_sessions_have() -> None:
    rows = pd.DataFrame(
        {
            "n_units": [5, 5, 5, 5, 10, 10, 10, 20, 20],
            "accuracy": [0.1, 0.2, 0.1, 0.2, 0.3, 0.3, 0.4, 0.5, 0.6],
        }
    ).assign(ci_low=0.0, ci_high=1.0)
    curve = pooled_curve(rows, "n_units", k_total=4)
    assert curve.index.tolist() == [5, 10]  # 20 rests on two sessions only
    assert pooled_curve(rows[rows["n_units"] == 20], "n_units", 2).index.tolist() == [20]


def test_areas_are_compared_at_a_size_three_quarters_of_them_reach() -> None:
    sizes = {"LGd": 22, "VISp": 30, "VISl": 25, "VISal": 7}  # VISal is small
    rows = []
    for area, size in sizes.items():
        for n in (5, 10, 20):
            if n < size:
                rows.append({"area": area, "n_units": n, "all_units": False})
        rows.append({"area": area, "n_units": size, "all_units": True})
    table = pd.DataFrame(rows).assign(analysis="units", session_id=1)
    table["area_units"] = table["area"].map(sizes)
    assert matched_units(table) == 20  # 3 of 4 areas reach 20; VISal sits it out
    assert matched_units(table, share=1.0) == 5
