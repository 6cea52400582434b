"""The Wiener filter: ridge regression from lagged spike counts to kinematics (pure numpy).

The field's linear reference (e.g. Glaser et al. 2020, "Machine learning for neural
decoding"): the target at bin k is a linear function of every unit's counts in bins
k-h+1..k. Inputs are z-scored with training statistics; the ridge penalty is chosen on
the validation rows from a fixed grid, then the model is refitted on train with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_ALPHAS = tuple(10.0**k for k in range(-1, 6))


@dataclass(frozen=True)
class Wiener:
    """A fitted filter: `predict(x) = ((x - mean) / scale) @ weights + bias`."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    alpha: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N, D) predictions from (N, h, U) windows."""
        z = (x.reshape(x.shape[0], -1) - self.mean) / self.scale  # (N, h, U) -> (N, h*U)
        return z @ self.weights + self.bias


def ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights (F, D) and bias (D,) minimising |y - x w - b|^2 + alpha |w|^2 (x centred here)."""
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    xc = x - xm
    gram = xc.T @ xc + alpha * np.eye(x.shape[1])
    w = np.linalg.solve(gram, xc.T @ (y - ym))
    return w, ym - xm @ w


def fit(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
) -> Wiener:
    """Fit on (N, h, U) windows and (N, D) targets; alpha chosen by validation R² (overall)."""
    flat = x_train.reshape(x_train.shape[0], -1).astype(np.float64)  # (N, h*U)
    mean = flat.mean(axis=0)
    scale = flat.std(axis=0)
    scale[scale == 0] = 1.0  # a silent input stays 0 after centring
    z = (flat - mean) / scale
    best: Wiener | None = None
    best_r2 = -np.inf
    for alpha in alphas:
        w, b = ridge(z, y_train, alpha)
        model = Wiener(mean, scale, w, b, float(alpha))
        err = ((y_val - model.predict(x_val)) ** 2).sum()
        r2 = 1 - err / ((y_val - y_val.mean(axis=0)) ** 2).sum()
        if r2 > best_r2:
            best, best_r2 = model, r2
    assert best is not None  # alphas is not empty
    return best
