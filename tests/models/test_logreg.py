"""Logistic regression, and PCA + logistic regression (the lab's old baseline)."""

from __future__ import annotations

import numpy as np
import torch

from npdecode.formats.checkpoint import predict, save_checkpoint
from npdecode.models.logreg import LogReg, fit_logreg
from npdecode.params import LogregParams

from .conftest import ring_graph, separable, tiny_session


def test_pca_projects_on_the_leading_components_of_the_training_features() -> None:
    x, y = separable(n_classes=4, per_class=6, n_units=7)
    model = fit_logreg(LogReg(LogregParams(pca=3, C=1.0), 7, 5, 4), x, y)
    raw = x.sum(axis=1).astype(np.float64)  # summed features (P, U)
    centred = raw - raw.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    comps = model.components.numpy()
    assert comps.shape == (3, 7)
    np.testing.assert_allclose(comps @ comps.T, np.eye(3), atol=1e-5)  # orthonormal
    # the same subspace as the top-3 right singular vectors (signs may flip)
    np.testing.assert_allclose(np.abs(comps @ vt[:3].T), np.eye(3), atol=1e-4)
    with torch.no_grad():
        scores = model.features(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(scores.var(axis=0), sv[:3] ** 2 / len(x), rtol=1e-3)
    acc = (model(torch.from_numpy(x)).argmax(1).numpy() == y).mean()
    assert acc > 0.9


def test_more_components_than_samples_pads_with_zeros() -> None:
    x, y = separable(n_classes=2, per_class=2, n_units=7)  # 4 presentations, 7 features
    model = fit_logreg(LogReg(LogregParams(pca=6), 7, 5, 2), x, y)
    comps = model.components.numpy()
    assert comps.shape == (6, 7)
    assert np.abs(comps[4:]).sum() == 0  # at most P components exist
    assert torch.isfinite(model(torch.from_numpy(x))).all()


def test_pca_logreg_checkpoint_predicts_like_the_model(tmp_path) -> None:
    rng = np.random.default_rng(0)
    counts = rng.poisson(2.0, (12, 5, 7)).astype(np.uint16)
    y = np.arange(12) % 3
    data = tiny_session(counts, y, 3, ring_graph(7))
    model = fit_logreg(LogReg(LogregParams(pca=4), 7, 5, 3), data.normalise(counts), y).eval()
    path = tmp_path / "logreg.pt"
    save_checkpoint(path, "logreg", model, data)
    expected = torch.softmax(model(torch.from_numpy(data.normalise(counts))), 1).detach().numpy()
    np.testing.assert_allclose(
        predict(path, counts, data.unit_ids, session_id=data.session_id),
        expected,
        rtol=1e-5,
        atol=1e-6,
    )
