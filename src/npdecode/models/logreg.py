"""Logistic regression on per-unit summed (or binned) counts: the fast, strong baseline.

Fitted with scikit-learn (multinomial, L2, lbfgs), then held as a torch module so it
is saved, loaded and applied exactly like the deep models. With `pca: k` the features
are first projected on their k leading principal components of the training split
(the lab's old "PCA + logistic regression").
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import torch
from torch import nn

from npdecode.params import LogregParams

log = logging.getLogger(__name__)


class LogReg(nn.Module):
    """Standardise features, then one linear layer: x (B, T, U) -> logits (B, C)."""

    shift: torch.Tensor  # buffers: (F,) feature mean and sd of the training split
    scale: torch.Tensor
    center: torch.Tensor  # with pca: (R,) mean of the raw features, (F, R) components
    components: torch.Tensor

    def __init__(self, p: LogregParams, n_units: int, n_bins: int, n_classes: int) -> None:
        super().__init__()
        self.p = p  # params `train.logreg`: features here, C and max_iter in `fit_logreg`
        self.dims = {"n_units": n_units, "n_bins": n_bins, "n_classes": n_classes}
        n_raw = n_units if p.features == "summed" else n_units * n_bins
        n_features = min(p.pca, n_raw) if p.pca else n_raw
        if p.pca:
            self.register_buffer("center", torch.zeros(n_raw))
            self.register_buffer("components", torch.zeros(n_features, n_raw))
        self.register_buffer("shift", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.linear = nn.Linear(n_features, n_classes)

    def raw_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.p.features == "summed":
            return x.sum(dim=1)  # (B, T, U) -> (B, U)
        return x.flatten(1)  # (B, T, U) -> (B, T*U)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        f = self.raw_features(x)
        if self.p.pca:
            return (f - self.center) @ self.components.T  # (B, R) -> (B, F) PC scores
        return f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((self.features(x) - self.shift) / self.scale)


def fit_logreg(model: LogReg, x: np.ndarray, y: np.ndarray) -> LogReg:
    """Fit `model` on (P, T, U) normalised counts and class labels (in place); return it."""
    n_classes = model.dims["n_classes"]
    with torch.no_grad():
        if model.p.pca:
            _fit_pca(model, model.raw_features(torch.from_numpy(x)).double().numpy())
        feats = model.features(torch.from_numpy(x)).double().numpy()
    shift, scale = feats.mean(axis=0), feats.std(axis=0)
    scale[scale == 0] = 1.0
    # imported here: sklearn costs every stage that imports the models ~0.5 CPU-s at start-up
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=model.p.C, max_iter=model.p.max_iter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        # one-shot training has one sample per class, which sklearn flags as "maybe regression"
        warnings.filterwarnings(
            "ignore", message="The number of unique classes is greater than 50%"
        )
        clf.fit((feats - shift) / scale, y)
    for w in caught:
        hint = (
            " (raise train.logreg.max_iter)" if issubclass(w.category, ConvergenceWarning) else ""
        )
        log.warning("logreg: %s%s", w.message, hint)
    coef = np.zeros((n_classes, feats.shape[1]))
    intercept = np.zeros(n_classes)
    if len(clf.classes_) == 2:  # sklearn keeps one row for two classes: logits [0, z]
        coef[clf.classes_[1]], intercept[clf.classes_[1]] = clf.coef_[0], clf.intercept_[0]
    else:
        coef[clf.classes_], intercept[clf.classes_] = clf.coef_, clf.intercept_
    if len(clf.classes_) < n_classes:  # a class absent from train can never be predicted
        intercept[np.setdiff1d(np.arange(n_classes), clf.classes_)] = -1e9
    with torch.no_grad():
        model.shift.copy_(torch.from_numpy(shift))
        model.scale.copy_(torch.from_numpy(scale))
        model.linear.weight.copy_(torch.from_numpy(coef))
        model.linear.bias.copy_(torch.from_numpy(intercept))
    return model


def _fit_pca(model: LogReg, raw: np.ndarray) -> None:
    """Set the PCA buffers from (P, R) training features: the leading right singular
    vectors of the centred features (zero rows if P < the number of components)."""
    center = raw.mean(axis=0)
    _, _, vt = np.linalg.svd(raw - center, full_matrices=False)  # vt (min(P, R), R)
    components = np.zeros(tuple(model.components.shape))
    k = min(len(vt), len(components))
    components[:k] = vt[:k]
    model.center.copy_(torch.from_numpy(center))
    model.components.copy_(torch.from_numpy(components))
