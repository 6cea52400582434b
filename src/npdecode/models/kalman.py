"""The velocity Kalman filter of Wu et al. (2006), fitted by least squares (pure numpy).

State x_k = [px, py, vx, vy, ax, ay]; dynamics x_{k+1} = A x_k + w, w ~ N(0, W);
observation z_k = H x_k + d + q, q ~ N(0, Q), with z_k the units' counts `lag` bins
before k (the neural lead; `lag` chosen on validation) and d their baselines. A, W, H, d,
Q are least-squares fits on the training bins (Wu et al. 2006, eqs. 2-3). Decoding is the
Kalman recursion in information form: the update inverts 6 x 6 matrices (H' Q^-1 H is
computed once), not the U x U innovation covariance, so 200 units cost little.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

VELOCITY = slice(2, 4)  # columns of vx, vy in the state


@dataclass(frozen=True)
class Kalman:
    """A fitted filter (matrices as in the module docstring)."""

    a: np.ndarray
    w: np.ndarray
    h: np.ndarray
    d: np.ndarray
    q: np.ndarray
    x0: np.ndarray
    p0: np.ndarray
    lag: int

    def filter(self, counts: np.ndarray) -> np.ndarray:
        """(B, 6) filtered states for (B, U) consecutive counts (shifted by `lag` here)."""
        z = shift(counts, self.lag) - self.d  # (B, U)
        hq = np.linalg.solve(self.q, self.h).T  # (6, U) = H' Q^-1
        info = hq @ self.h  # (6, 6) = H' Q^-1 H
        drive = z @ hq.T  # (B, 6) = H' Q^-1 z_k for every k
        x, p = self.x0.copy(), self.p0.copy()
        out = np.empty((z.shape[0], x.size))
        for k in range(z.shape[0]):
            x = self.a @ x
            p = self.a @ p @ self.a.T + self.w
            p = np.linalg.inv(np.linalg.inv(p) + info)
            x = x + p @ (drive[k] - info @ x)  # = x + P H' Q^-1 (z - H x)
            out[k] = x
        return out


def shift(counts: np.ndarray, lag: int) -> np.ndarray:
    """(B, U) float counts taken `lag` bins earlier (zeros before the first bin)."""
    out = np.zeros(counts.shape, dtype=np.float64)
    out[lag:] = counts[: counts.shape[0] - lag]
    return out


def state(pos: np.ndarray, vel: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """(B, 6) Kalman states from (B, 2) position, velocity, acceleration."""
    return np.column_stack([pos, vel, acc])


def fit_matrices(
    x_now: np.ndarray, x_next: np.ndarray, x: np.ndarray, z: np.ndarray, lag: int
) -> Kalman:
    """Least squares: A, W from state pairs (x_now -> x_next); H, d, Q from states x, counts z."""
    a_t, *_ = np.linalg.lstsq(x_now, x_next, rcond=None)  # (6, 6): x_k @ a_t
    a = a_t.T
    w = np.cov((x_next - x_now @ a_t).T)
    x1 = np.column_stack([x, np.ones(x.shape[0])])  # (N, 7) with an intercept
    hd, *_ = np.linalg.lstsq(x1, z, rcond=None)  # (7, U)
    h, d = hd[:-1].T, hd[-1]
    resid = z - x1 @ hd
    # a tiny ridge keeps Q invertible when a unit never fires in the training bins
    q = resid.T @ resid / max(1, z.shape[0] - 1) + 1e-6 * np.eye(z.shape[1])
    return Kalman(a, w, h, d, q, x.mean(axis=0), np.cov(x.T), lag)


def fit(
    counts: np.ndarray,
    states: np.ndarray,
    train: np.ndarray,
    val: np.ndarray,
    lags: Sequence[int] = (0, 1, 2, 3, 4),
) -> Kalman:
    """Fit on the training rows, choosing the lag by validation R² of velocity.

    Args:
        counts: (B, U) counts of every bin of the session.
        states: (B, 6) true states of every bin (`state`).
        train, val: row indices (bins) of each split. Dynamics use the pairs (k, k+1)
            with both bins in train, so no pair crosses a split edge.
        lags: candidate neural leads, bins.
    """
    pairs = train[np.isin(train + 1, train)]
    best: Kalman | None = None
    best_r2 = -np.inf
    for lag in lags:
        z = shift(counts, lag)
        model = fit_matrices(states[pairs], states[pairs + 1], states[train], z[train], lag)
        vel = model.filter(counts)[val, VELOCITY]
        y = states[val, VELOCITY]
        r2 = 1 - ((y - vel) ** 2).sum() / ((y - y.mean(axis=0)) ** 2).sum()
        if r2 > best_r2:
            best, best_r2 = model, r2
    assert best is not None  # lags is not empty
    return best
