"""reaching.bins: continuous counts equal a naive per-spike reference; targets and windows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npdecode.binning import bin_edges
from npdecode.reaching.bins import (
    bin_counts,
    bin_targets,
    history,
    overlapping,
    samples_per_bin,
)


def _naive(trains: list[np.ndarray], edges: np.ndarray) -> np.ndarray:
    """One spike at a time: the half-open bin [edges[k], edges[k+1]) holding it, if any."""
    n = edges.size - 1
    out = np.zeros((n, len(trains)), dtype=np.int64)
    for u, train in enumerate(trains):
        for s in train:
            k = int(np.searchsorted(edges, s, side="right")) - 1
            if 0 <= k < n and s < edges[-1]:
                out[k, u] += 1
    return out


@settings(max_examples=60, deadline=None)
@given(
    t0=st.floats(0, 100),
    n_samples=st.integers(1, 400),
    k=st.sampled_from([1, 4, 10, 16]),
    seed=st.integers(0, 2**32 - 1),
    n_units=st.integers(0, 5),
)
def test_counts_equal_a_naive_reference(t0: float, n_samples: int, k: int, seed: int,
                                        n_units: int) -> None:  # fmt: skip
    rng = np.random.default_rng(seed)
    t = t0 + np.arange(n_samples) * 0.004
    width = k * 0.004
    n = n_samples // k
    # the documented edges (npdecode.binning.bin_edges over one window [t0, t0 + n k 4 ms))
    edges = bin_edges(np.array([t[0]]), np.array([t[0] + n * k * 0.004]), max(n, 1))[0]
    trains = []
    for _ in range(n_units):
        s = rng.uniform(t0 - 0.1, t[-1] + 0.1, rng.integers(0, 60))
        if n and s.size:  # some spikes exactly on bin edges
            s[: s.size // 4] = edges[rng.integers(0, n + 1, s.size // 4)]
        trains.append(np.unique(s))
    got = bin_counts(trains, t, width)
    assert got.shape == (n, n_units)
    if n:
        np.testing.assert_array_equal(got, _naive(trains, edges))


def test_hand_written_counts_and_edges() -> None:
    t = 1.0 + np.arange(10) * 0.004  # 40 ms of samples -> two 20 ms bins
    trains = [np.array([1.0, 1.019, 1.02, 1.039, 1.04]), np.array([])]
    np.testing.assert_array_equal(bin_counts(trains, t, 0.02), [[2, 0], [2, 0]])


def test_targets_are_bin_means_and_partial_bin_dropped() -> None:
    v = np.arange(14, dtype=float).reshape(7, 2)  # 7 samples, 2 axes
    np.testing.assert_array_equal(bin_targets(v, 0.012), [[2, 3], [8, 9]])


def test_bin_width_must_be_whole_samples() -> None:
    assert samples_per_bin(0.04) == 10
    with pytest.raises(ValueError, match="0.05 s is not a whole number of 4 ms"):
        samples_per_bin(0.05)


def test_history_windows() -> None:
    x = np.arange(8).reshape(4, 2)
    w = history(x, 3)
    assert w.shape == (4, 3, 2)
    np.testing.assert_array_equal(w[3], x[1:4])
    np.testing.assert_array_equal(w[0], [[0, 0], [0, 0], [0, 1]])


def test_bins_overlapping_gaps_widened_by_one_sample() -> None:
    # bins of 40 ms from t0 = 10 s; a gap [10.1, 10.2) touches bins 2..4 and, widened by
    # 4 ms each side, bins 2 ([10.08, 10.12)) and 5 ([10.2, 10.24)) too
    got = overlapping(np.array([[10.1, 10.2]]), 10.0, 8, 0.04)
    assert np.flatnonzero(got).tolist() == [2, 3, 4, 5]
    # a gap before the first bin or after the last touches nothing; none given: none
    assert not overlapping(np.array([[0.0, 9.9], [11.0, 12.0]]), 10.0, 8, 0.04).any()
    assert not overlapping(np.zeros((0, 2)), 10.0, 8, 0.04).any()
