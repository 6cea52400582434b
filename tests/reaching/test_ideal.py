"""reaching.ideal: lead bookkeeping, the AR prior, and the filter on data from its own model."""

from __future__ import annotations

import numpy as np

from npdecode.formats.macaque_truth import MacaqueTruth
from npdecode.reaching import ideal


def test_lead_groups_split_whole_and_fractional_bins() -> None:
    groups = ideal.lead_groups(np.array([0.1, 0.0, 0.1, 0.08]), 0.04)
    got = {round(float(lead), 2): (cols.tolist(), fl, round(frac, 6)) for lead, (cols, fl, frac)
           in zip((0.0, 0.08, 0.1), groups, strict=True)}  # fmt: skip
    assert got == {0.0: ([1], 0, 0.0), 0.08: ([3], 2, 0.0), 0.1: ([0, 2], 2, 0.5)}


def test_fit_prior_recovers_an_ar2_and_skips_split_edges() -> None:
    rng = np.random.default_rng(0)
    x = np.zeros((3000, 1))
    for k in range(2, 3000):
        x[k] = 1.6 * x[k - 1] - 0.7 * x[k - 2] + rng.normal(0, 0.1)
    train = np.r_[0:1000, 1500:3000]  # a gap: no run may span it
    x[1000:1500] = 1e6  # would wreck the fit if read
    a, q = ideal.fit_prior(x, train, 2)
    np.testing.assert_allclose(a, [[1.6, -0.7]], atol=0.05)
    assert abs(np.sqrt(q) - 0.1) < 0.01


def _simulate(rng: np.random.Generator, n: int, truth: MacaqueTruth, width: float) -> tuple:
    """Kinematics from a smooth random process and counts from the filter's own model."""
    vel = np.zeros((n, 2))
    for k in range(2, n):
        vel[k] = 1.8 * vel[k - 1] - 0.82 * vel[k - 2] + rng.normal(0, 8, 2)
    pos = np.cumsum(vel, axis=0) * width
    pos -= pos.mean(axis=0)
    f = np.column_stack([vel / truth.v_ref, pos / truth.p_ref, np.hypot(*vel.T) / truth.v_ref])
    lead = np.rint(truth.lead_s / width).astype(int)
    rate = np.exp(truth.baseline + np.log(width) + f @ truth.coef.T)  # (n, U) at x_k
    counts = np.zeros_like(rate)
    for u, ld in enumerate(lead):  # unit u fires in bin j at the rate of x_{j + lead}
        counts[: n - ld, u] = rng.poisson(rate[ld:, u])
    return np.column_stack([pos, vel]), counts


def test_filter_decodes_its_own_model_and_not_shuffled_counts() -> None:
    rng = np.random.default_rng(1)
    n_units, width = 60, 0.04
    angle = rng.uniform(0, 2 * np.pi, n_units)
    truth = MacaqueTruth(
        neuron_id=np.arange(n_units), channel=np.arange(n_units), row=np.ones(n_units, int),
        baseline=np.full(n_units, np.log(15.0)),
        coef=np.column_stack([np.cos(angle), np.sin(angle), np.zeros((n_units, 3))]),
        lead_s=np.where(np.arange(n_units) < 40, 0.08, 0.0),
        hash_baseline=np.zeros(1), hash_coef=np.zeros((1, 5)), v_ref=300.0, p_ref=80.0,
    )  # fmt: skip
    states, counts = _simulate(rng, 4000, truth, width)
    train, test = np.arange(3000), np.arange(3000, 3990)
    out = ideal.decode(counts, truth, width, states, train)
    y = states[test, 2:]
    r2 = 1 - ((y - out[test, 2:]) ** 2).sum() / ((y - y.mean(0)) ** 2).sum()
    assert r2 > 0.6
    shuffled = ideal.decode(rng.permutation(counts), truth, width, states, train)
    r2s = 1 - ((y - shuffled[test, 2:]) ** 2).sum() / ((y - y.mean(0)) ** 2).sum()
    assert r2s < 0.1
