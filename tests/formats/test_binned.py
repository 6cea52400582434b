"""Count files read back exactly, keyed by id, or fail naming what is wrong."""

import numpy as np
import pandas as pd
import pytest

from npdecode.errors import DataError
from npdecode.formats.binned import Counts, per_presentation, read_counts, write_counts


def _counts(n_pres=5, n_bins=3, n_units=4, seed=0):
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
    ids = pres["presentation_id"].to_numpy()
    return Counts.from_counts(counts, ids, np.arange(100, 100 + n_units)), pres


def test_round_trip_is_exact(tmp_path):
    c, _ = _counts()
    write_counts(tmp_path / "1.counts.npz", c)
    back = read_counts(tmp_path / "1.counts.npz", 1)
    for name in ("counts", "presentation_id", "unit_id"):
        np.testing.assert_array_equal(getattr(back, name), getattr(c, name))
    assert back.counts.dtype == np.uint16 and back.by_unit.flags.c_contiguous  # unit-major


def test_same_counts_same_bytes(tmp_path):
    c, _ = _counts()
    write_counts(tmp_path / "a.npz", c)
    write_counts(tmp_path / "b.npz", c)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_presentations_are_matched_by_id_not_position():
    c, pres = _counts()
    order = np.array([3, 0, 4, 1, 2])
    shuffled = Counts.from_counts(c.counts[order], c.presentation_id[order], c.unit_id)
    counts, rows = per_presentation(shuffled, pres.sample(frac=1.0, random_state=1), 1, "t.npz")
    np.testing.assert_array_equal(counts, c.counts)
    np.testing.assert_array_equal(rows["presentation_id"], pres["presentation_id"])
    np.testing.assert_array_equal(rows["frame"], pres["frame"])
    np.testing.assert_array_equal(rows["start_time"], pres["start_time"])


def test_presentation_missing_from_the_table_is_named():
    c, pres = _counts()
    with pytest.raises(DataError, match=r"session 1: t.npz: presentations \[12\] are missing"):
        per_presentation(c, pres.drop(index=2), 1, "t.npz")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: Counts(c.by_unit, c.presentation_id[[0, 0, 2, 3, 4]], c.unit_id),
            "duplicated presentation_id",
        ),
        (
            lambda c: Counts(c.by_unit, c.presentation_id, c.unit_id[:3]),
            "unit_id must be 4 integers",
        ),
        (
            lambda c: Counts(c.by_unit.astype(np.float32), c.presentation_id, c.unit_id),
            "unsigned integer",
        ),
        (lambda c: Counts(c.by_unit[0], c.presentation_id, c.unit_id), "unsigned integer"),
        (
            lambda c: Counts(c.by_unit, c.presentation_id.astype(float), c.unit_id),
            "presentation_id must be",
        ),
    ],
)
def test_inconsistent_counts_are_refused(tmp_path, change, message):
    c, _ = _counts()
    with pytest.raises(DataError, match=message):
        write_counts(tmp_path / "x.npz", change(c))
    assert not (tmp_path / "x.npz").exists()
