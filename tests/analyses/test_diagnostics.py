"""Session diagnostics: an ANOVA checked against scipy, facts read from the reports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from npdecode.analyses.diagnostics import anova_pvalues, session_diagnostics
from npdecode.formats.split import SessionData, Split


def test_anova_matches_scipy_and_handles_constant_units() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), 12)
    tuned = rng.poisson(2 + 3 * y)  # rate grows with the class
    flat = rng.poisson(4, len(y))
    silent = np.zeros(len(y))
    steps = y.astype(float)  # constant within every class, different between classes
    p = anova_pvalues(np.stack([tuned, flat, silent, steps], axis=1), y)
    for u, col in enumerate((tuned, flat)):
        expected = stats.f_oneway(*[col[y == c] for c in range(5)]).pvalue
        assert p[u] == pytest.approx(expected, rel=1e-9)
    assert p[0] < 1e-6 and p[1] > 0.01
    assert p[2] == 1.0 and p[3] == 0.0


def _session(counts: np.ndarray, y: np.ndarray, areas: list[str]) -> SessionData:
    half = len(y) // 2
    train = Split(counts[:half], y[:half], np.arange(half))
    rest = Split(counts[half:], y[half:], np.arange(half, len(y)))
    n_units = counts.shape[2]
    return SessionData(
        session_id=3,
        train=train,
        val=rest.subset(np.arange(0, len(rest), 2)),
        test=rest.subset(np.arange(1, len(rest), 2)),
        frames=np.arange(int(y.max()) + 1),
        unit_ids=np.arange(n_units),
        mean=np.zeros(n_units, np.float32),
        std=np.ones(n_units, np.float32),
        edge_index=np.zeros((2, 0), np.int64),
        edge_weight=np.zeros(0, np.float32),
        units=pd.DataFrame({"unit_id": np.arange(n_units), "area": areas}),
        n_bins=counts.shape[1],
        bin_width_s=0.05,
    )


def test_session_diagnostics_measures_rates_selectivity_and_drops() -> None:
    rng = np.random.default_rng(1)
    y = np.tile(np.arange(4), 30)
    counts = np.stack(
        [
            rng.poisson(1 + 2 * y[:, None], (len(y), 5)),  # VISp: tuned
            rng.poisson(2.0, (len(y), 5)),  # VISl: untuned, 2 spikes per 50 ms bin
            rng.poisson(1 + 2 * y[:, None], (len(y), 5)),  # CA1: tuned
        ],
        axis=2,
    )
    data = _session(counts, y, ["VISp", "VISl", "CA1"])
    clean = {
        "units": {"total": 10, "kept": 3, "dropped": {"silent": {"n": 7, "ids": []}}},
        "presentations": {
            "total": 150,
            "kept": 120,
            "dropped": {"invalid_times": {"n": 30, "ids": []}},
        },
    }
    binned = {"n_spikes": 1000, "invalid_spikes_removed": {"total": 50}}
    d = session_diagnostics(data, clean, binned)
    assert d["n_units"] == 3 and d["n_visual_units"] == 2
    assert d["visual"]["n_units"] == 2
    areas = {a.pop("area"): a for a in d["areas"]}
    assert list(areas) == ["VISp", "VISl", "CA1"]
    assert areas["VISl"]["median_rate_hz"] == pytest.approx(2.0 / 0.05, rel=0.1)
    assert areas["VISp"]["selective_fraction"] == 1.0
    assert areas["VISl"]["selective_fraction"] == 0.0
    assert d["selective_fraction"] == pytest.approx(2 / 3)
    assert d["presentations_dropped_fraction"] == pytest.approx(0.2)
    assert d["presentations_dropped"] == {"invalid_times": 30}
    assert d["units_dropped_fraction"] == pytest.approx(0.7)
    assert d["invalid_spike_fraction"] == pytest.approx(0.05)


def test_labels_detached_from_the_spikes_leave_no_selective_units() -> None:
    # a stimulus table out of step with the spikes (a timing fault) looks like this
    rng = np.random.default_rng(2)
    y = np.tile(np.arange(8), 40)
    counts = rng.poisson(1 + y[:, None], (len(y), 50))  # 50 strongly tuned units
    assert (anova_pvalues(counts, y) < 0.01).mean() == 1.0
    shuffled = rng.permutation(y)
    assert (anova_pvalues(counts, shuffled) < 0.01).mean() < 0.1
