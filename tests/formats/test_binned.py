"""A binned table reads back by presentation id, or fails naming what is wrong."""

import numpy as np
import pandas as pd
import pytest

from npdecode.errors import DataError
from npdecode.formats.binned import to_table, to_tensor


def _table(n_pres=5, n_bins=3, n_units=4, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 9, (n_pres, n_bins, n_units)).astype(np.uint16)
    pres = pd.DataFrame(
        {
            "presentation_id": np.arange(10, 10 + n_pres),
            "start_time": np.arange(n_pres) * 0.25,
            "stop_time": np.arange(1, n_pres + 1) * 0.25,
            "frame": rng.integers(-1, 3, n_pres).astype(float),
        }
    )
    return counts, pres, to_table(counts, pres, np.arange(100, 100 + n_units))


def test_round_trip_is_exact_and_order_independent():
    counts, pres, table = _table()
    shuffled = table.sample(frac=1.0, random_state=1)
    back, per_pres = to_tensor(shuffled, 3, 1, "t.parquet")
    np.testing.assert_array_equal(back, counts)
    np.testing.assert_array_equal(per_pres["presentation_id"], pres["presentation_id"])
    np.testing.assert_array_equal(per_pres["frame"], pres["frame"])


def test_rows_missing_in_the_middle_are_named_not_shifted():
    _, _, table = _table()
    broken = table.drop(index=[7])  # presentation 12, bin 1
    with pytest.raises(
        DataError, match=r"session 1: t.parquet: presentations \[12\] do not have exactly bins 0..2"
    ):
        to_tensor(broken, 3, 1, "t.parquet")


def test_duplicated_bin_is_detected():
    _, _, table = _table()
    dup = table.copy()
    dup.loc[4, "bin"] = 0  # presentation 11 now has bins 0, 0, 2
    with pytest.raises(DataError, match=r"presentations \[11\]"):
        to_tensor(dup, 3, 1, "t.parquet")


def test_mixed_frames_within_a_presentation_detected():
    _, _, table = _table()
    table.loc[1, "frame"] = 99.0
    with pytest.raises(DataError, match=r"presentations \[10\] mix frames"):
        to_tensor(table, 3, 1, "t.parquet")
