"""The exact Poisson sampler behind the Allen twin: law, order, zero-rate cells."""

import numpy as np
import pytest

from npdecode.sources.spiketrains import (
    place_spikes,
    segment_counts,
    sorted_uniforms,
    stack_cumulative,
)


def _axis(rates: np.ndarray, edges: np.ndarray) -> np.ndarray:
    buf = np.zeros((rates.shape[0], rates.shape[1] + 1))
    buf[:, 1:] = rates * np.diff(edges)
    return stack_cumulative(buf)


def test_stacked_axis_increases_and_keeps_each_units_integral():
    edges = np.array([0.0, 1.0, 3.0])
    rates = np.array([[2.0, 1.0], [0.0, 4.0]])
    axis = _axis(rates, edges)
    assert (np.diff(axis.ravel()) >= 0).all()
    np.testing.assert_allclose(np.diff(axis, axis=1), rates * [1.0, 2.0])
    assert axis[1, 0] > axis[0, -1]


def test_sorted_uniforms_are_sorted_per_segment_and_uniform():
    rng = np.random.default_rng(0)
    counts = np.array([3, 0, 5000, 1])
    u = sorted_uniforms(counts, rng)
    assert len(u) == counts.sum() and ((u >= 0) & (u < 1)).all()
    parts = np.split(u, np.cumsum(counts)[:-1])
    assert all((np.diff(p) >= 0).all() for p in parts)
    assert abs(parts[2].mean() - 0.5) < 0.02 and abs(np.median(parts[2]) - 0.5) < 0.03


def test_spikes_follow_the_rates_cell_by_cell():
    """Counts per cell over 300 draws match rate x width x 300 (chi-square per cell ~ 1)."""
    rng = np.random.default_rng(1)
    edges = np.sort(np.r_[0.0, rng.uniform(0, 50, 199), 50.0])
    rates = rng.gamma(1.0, 5.0, (3, 200))
    rates[1, 40:90] = 0.0  # a unit silent for a while
    axis = _axis(rates, edges)
    segments = np.array([0, 60, 130, 200])
    means = np.diff(axis[:, segments], axis=1)
    total = np.zeros((3, 200))
    for _ in range(300):
        counts = segment_counts(means, rng)
        times = place_spikes(axis, np.tile(edges, 3), segments, counts, rng)
        assert len(times) == counts.sum()
        for j, t in enumerate(np.split(times, np.cumsum(counts.sum(axis=1))[:-1])):
            assert (np.diff(t) >= 0).all() and (t >= 0).all() and (t < 50).all()
            total[j] += np.histogram(t, edges)[0]
    expected = rates * np.diff(edges) * 300
    assert total[1, 40:90].sum() == 0
    chi2 = ((total - expected) ** 2 / np.where(expected > 0, expected, 1))[expected > 0]
    assert 0.8 < chi2.mean() < 1.2


def test_spikes_in_a_silent_segment_are_refused():
    edges = np.array([0.0, 1.0, 2.0])
    axis = _axis(np.array([[0.0, 3.0]]), edges)
    with pytest.raises(ValueError, match="rate is zero"):
        place_spikes(axis, edges, np.array([0, 1, 2]), np.array([[1, 0]]), np.random.default_rng(0))
