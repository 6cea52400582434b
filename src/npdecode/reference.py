"""Reference decoders that bracket what a learned model can reach.

- `ideal_observer`: the Bayes-optimal decoder of a synthetic session. It knows every
  unit's true rate in every bin for every image (and, for an Allen twin, each unit's
  drift and the perceptual-lapse kernel) and integrates over the shared gain, so no
  decoder can beat it on average.
- `PoissonPlugin`: the right model class (independent Poisson units) with rates
  estimated from the training split. The gap between the two is what finite training
  data alone costs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from npdecode.errors import DataError
from npdecode.evaluation import classification_metrics
from npdecode.formats.split import SessionData
from npdecode.formats.truth import SyntheticTruth

N_GAIN_NODES = 21  # Gauss–Hermite nodes for the integral over log gain


def expected_counts(
    rates_hz: np.ndarray, step_s: float, duration_s: float, n_bins: int
) -> np.ndarray:
    """Expected spike count per bin for each class and unit: (C, n_bins, U).

    Args:
        rates_hz: (C, S, U) piecewise-constant rates on a grid of `step_s` seconds.
        step_s: width of one rate step (s).
        duration_s: presentation duration (s); bins split it into `n_bins` equal parts.
        n_bins: number of bins per presentation.
    """
    n_classes, n_steps, n_units = rates_hz.shape
    grid = step_s * np.arange(n_steps + 1)  # (S + 1,) step boundaries
    cum = np.zeros((n_classes, n_steps + 1, n_units))
    cum[:, 1:] = np.cumsum(rates_hz.astype(np.float64) * step_s, axis=1)
    edges = np.linspace(0.0, duration_s, n_bins + 1)
    # the integral of a piecewise-constant rate is piecewise linear: interpolate exactly
    pos = np.interp(edges, grid, np.arange(n_steps + 1))  # fractional step index of each edge
    lo = np.clip(np.floor(pos).astype(int), 0, n_steps - 1)
    frac = (pos - lo)[None, :, None]
    at_edges = cum[:, lo] + frac * (cum[:, lo + 1] - cum[:, lo])  # (C, n_bins + 1, U)
    return np.diff(at_edges, axis=1)


def ideal_observer(
    counts: np.ndarray,
    expected: np.ndarray,
    gain_sd: float,
    unit_gain: np.ndarray | None = None,
    confusion: np.ndarray | None = None,
) -> np.ndarray:
    """Log posterior over classes (uniform prior) of each presentation: (P, C).

    Args:
        counts: (P, T, U) observed spike counts.
        expected: (K, T, U) true expected counts at gain 1 for each response class k.
        gain_sd: sd of the log of the per-presentation gain shared by all units.
        unit_gain: (P, U) known multiplier of each unit's rate on each presentation (slow
            drift, 0 while a unit is off the probe); None: 1.
        confusion: (C, K) P(response class k | class c shown) (perceptual lapses); None:
            the identity (K == C).
    """
    x = counts.reshape(len(counts), -1).astype(np.float64)  # (P, T*U)
    lam = expected.reshape(len(expected), -1)  # (K, T*U)
    a = x @ np.log(np.maximum(lam, 1e-12)).T  # (P, K)  sum x log(lam); log m is class-free
    if unit_gain is None:
        total = np.broadcast_to(lam.sum(axis=1), a.shape)  # (P, K)
    else:
        total = unit_gain.astype(np.float64) @ expected.sum(axis=1).T  # (P, U) @ (U, K)
    n = x.sum(axis=1)  # (P,)
    if gain_sd > 0:
        nodes, weights = np.polynomial.hermite_e.hermegauss(N_GAIN_NODES)
        log_g = -(gain_sd**2) / 2 + gain_sd * nodes  # (G,)
        log_w = np.log(weights / weights.sum())
    else:
        log_g, log_w = np.zeros(1), np.zeros(1)
    # log p(x | k, g) = sum x log(g m lam) - g sum(m lam) + const(x)
    ll = a[:, :, None] + n[:, None, None] * log_g - np.exp(log_g) * total[:, :, None]
    log_lik = logsumexp(ll + log_w, axis=2)  # (P, K)
    if confusion is not None:  # p(x | c) = sum_k P(k | c) p(x | k)
        with np.errstate(divide="ignore"):
            log_lik = logsumexp(log_lik[:, None, :] + np.log(confusion)[None], axis=2)
    return log_lik - logsumexp(log_lik, axis=1, keepdims=True)


@dataclass(frozen=True)
class PoissonPlugin:
    """Independent-Poisson decoder of summed counts with rates fitted on train.

    Attributes:
        rates: (C, U) mean summed count per presentation of each class.
    """

    rates: np.ndarray

    @classmethod
    def fit(cls, counts: np.ndarray, y: np.ndarray, n_classes: int) -> PoissonPlugin:
        """Fit from (P, T, U) counts and labels; a half-count prior keeps rates above 0."""
        summed = counts.sum(axis=1, dtype=np.float64)  # (P, T, U) -> (P, U)
        n = np.bincount(y, minlength=n_classes).astype(np.float64)  # (C,)
        sums = np.zeros((n_classes, summed.shape[1]))
        np.add.at(sums, y, summed)
        return cls(rates=(sums + 0.5) / (n[:, None] + 1.0))

    def log_posterior(self, counts: np.ndarray) -> np.ndarray:
        """(P, C) log posterior (uniform prior) for (P, T, U) counts."""
        summed = counts.sum(axis=1, dtype=np.float64)  # (P, U)
        ll = summed @ np.log(self.rates).T - self.rates.sum(axis=1)
        return ll - logsumexp(ll, axis=1, keepdims=True)


def reference_metrics(data: SessionData, truth: SyntheticTruth | None) -> dict:
    """Reference accuracies on the test split (fractions)."""
    plugin = PoissonPlugin.fit(data.train.X, data.train.y, data.n_classes)
    return {
        "session_id": data.session_id,
        "chance": 1.0 / data.n_classes,
        "n_classes": data.n_classes,
        "n_units": data.n_units,
        "poisson_plugin": classification_metrics(
            plugin.log_posterior(data.test.X), data.test.y, data.n_classes
        ),
        "ideal": ideal_metrics(data, truth) if truth is not None else None,
    }


def ideal_metrics(data: SessionData, truth: SyntheticTruth) -> dict:
    """The ideal observer on the test split, seeing the same units and bins as the models."""
    col = {int(u): i for i, u in enumerate(truth.unit_ids)}
    row = {int(f): i for i, f in enumerate(truth.frames)}
    try:
        units = [col[int(u)] for u in data.unit_ids]
        classes = [row[int(f)] for f in data.frames]
    except KeyError as err:
        raise DataError(
            f"session {data.session_id}: truth.npz does not cover unit/frame {err}"
        ) from err
    duration = data.bin_width_s * data.n_bins
    if truth.confusion is None:
        rates = truth.rates_hz[classes][:, :, units]  # (C, S, U): the model's classes, units
        confusion = None
    else:  # a lapse may evoke any class's response, one the model never labels included
        rates = truth.rates_hz[:, :, units]
        confusion = truth.confusion[classes]  # (C, K)
    expected = expected_counts(rates, truth.step_s, duration, data.n_bins)
    unit_gain = None
    if truth.unit_gain is not None:
        unit_gain = truth.unit_gain[data.test.presentation_id][:, units]
    log_post = ideal_observer(data.test.X, expected, truth.gain_sd, unit_gain, confusion)
    return classification_metrics(log_post, data.test.y, data.n_classes)
