"""The realism table's statistics on hand-made data, and on a reduced twin."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from npdecode.analyses import realism
from tests.conftest import QUICKSTART_TWIN


def test_lifetime_sparseness_bounds():
    dense = np.ones((10, 1))
    one = np.zeros((10, 1))
    one[3] = 5.0
    np.testing.assert_allclose(realism.lifetime_sparseness(np.hstack([dense, one])), [0.0, 1.0])


def test_selectivity_finds_a_tuned_unit_and_not_a_flat_one():
    rng = np.random.default_rng(0)
    classes = np.repeat(np.arange(5), 40)
    tuned = rng.poisson(np.array([1, 1, 8, 1, 1])[classes])
    flat = rng.poisson(np.full(len(classes), 3))
    p = realism.selectivity(np.stack([tuned, flat], axis=1).astype(float), classes)
    assert p[0] < 1e-6 and p[1] > 0.01


def test_latency_is_the_half_peak_crossing():
    psth = np.zeros((50, 1))
    psth[10:20, 0] = [1, 2, 4, 8, 10, 10, 8, 6, 4, 2]  # excess over a blank of 0
    np.testing.assert_allclose(realism.latency(psth + 3.0, np.array([3.0])), [(13 + 0.5) * 0.005])


def test_fano_of_poisson_counts_is_near_one():
    rng = np.random.default_rng(1)
    classes = np.repeat(np.arange(4), 500)
    counts = rng.poisson(np.array([2.0, 5.0, 3.0, 8.0])[classes])[:, None].astype(float)
    assert abs(realism.fano(counts, classes)[0] - 1.0) < 0.1


def test_table_of_a_reduced_twin(twin_dir: Path) -> None:
    table, extra = realism.unit_statistics(twin_dir / "session_29.nwb", QUICKSTART_TWIN)
    assert len(table) == extra["counts"].shape[1]
    by_qc = realism.summary(table, extra, "passes_qc").set_index("passes_qc")
    assert by_qc["units"].sum() == len(table)
    by_area = realism.summary(table, extra, "family")
    assert "VISp" in set(by_area["family"]) and (by_area["rate_hz"] > 0).all()
    assert realism.main(["--nwb", str(twin_dir / "session_29.nwb"), "--session-id", "29"]) == 0
