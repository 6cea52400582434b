"""Pure pieces of the shared decoder's library: folds, shot normalisation, the ridge map."""

import numpy as np
import pytest

from npdecode.decode.fewshot import shot_statistics
from npdecode.decode.shared import encoding_map, ridge_map
from npdecode.decode.transfer import make_folds
from npdecode.errors import ParamsError


def test_ridge_map_recovers_a_linear_map_in_both_forms():
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(6, 3))
    for n_pres in (40, 1):  # 40*2 samples > 6 units: primal; 1*2 < 6: dual
        x = rng.normal(size=(n_pres, 2, 6)).astype(np.float32)
        target = x @ weight + np.array([1.0, -2.0, 0.5])
        w, b = ridge_map(x, target, alpha=1e-8)
        np.testing.assert_allclose(x @ w + b, target, atol=1e-3)
        if n_pres > 1:
            np.testing.assert_allclose(w, weight, atol=1e-3)
    # the two forms are one estimator: same answer on the same data with a real penalty
    x = rng.normal(size=(3, 2, 6))
    target = rng.normal(size=(3, 2, 4))
    w, b = ridge_map(x, target, alpha=0.5)
    X = x.reshape(-1, 6) - x.reshape(-1, 6).mean(0)
    Y = target.reshape(-1, 4) - target.reshape(-1, 4).mean(0)
    primal = np.linalg.solve(X.T @ X + 0.5 * 6 * np.eye(6), X.T @ Y)
    np.testing.assert_allclose(w, primal, rtol=1e-4, atol=1e-5)


def test_encoding_map_decodes_low_rank_latents_from_noisy_units():
    # 40 classes whose (C*T, D) latents span 12 components (3 per bin); 150 units load on them
    # plus noise of unit variance; 3 shots per class. The read-in's output on new presentations
    # lies nearest its own class's latent far above chance, and a rank past the templates'
    # is cut to theirs.
    rng = np.random.default_rng(1)
    n_classes, n_bins, dim, n_units = 40, 4, 12, 150
    templates = np.einsum("cr,trd->ctd", rng.normal(size=(n_classes, 3)),
                          rng.normal(size=(n_bins, 3, dim)))  # fmt: skip
    loading = rng.normal(0, 0.3, (dim, n_units))
    y = np.repeat(np.arange(n_classes), 3)
    x = templates[y] @ loading + rng.normal(size=(len(y), n_bins, n_units))
    new_y = np.repeat(np.arange(n_classes), 5)
    new_x = templates[new_y] @ loading + rng.normal(size=(len(new_y), n_bins, n_units))
    for rank in (12, 50):
        w, b = encoding_map(x, y, templates, rank, alpha=0.01)
        assert w.shape == (n_units, dim) and b.shape == (dim,) and w.dtype == np.float32
        z = (new_x @ w + b).reshape(len(new_y), -1)
        dist = ((z[:, None, :] - templates.reshape(n_classes, -1)[None]) ** 2).sum(-1)
        assert np.mean(dist.argmin(axis=1) == new_y) > 0.8  # chance: 0.025


def test_shot_statistics_silence_units_that_never_varied():
    x = np.zeros((4, 2, 3), np.uint16)
    x[:, :, 0] = [[1, 3], [1, 3], [1, 3], [1, 3]]
    x[:, :, 2] = 5  # constant
    mean, sd = shot_statistics(x)
    np.testing.assert_allclose(mean, [2, 0, 5])
    assert sd[0] == pytest.approx(1.0) and np.isinf(sd[1]) and np.isinf(sd[2])
    later = np.array([[[2, 4, 9]]], np.float32)
    assert ((later - mean) / sd).tolist() == [[[0.0, 0.0, 0.0]]]


def test_folds_are_a_seeded_partition_and_too_many_is_an_error():
    mice = [f"mouse_{i}" for i in range(10)]
    folds = make_folds(mice, 4, seed=3)
    assert sorted(m for f in folds for m in f) == sorted(mice)
    assert sorted(len(f) for f in folds) == [2, 2, 3, 3]
    assert make_folds(list(reversed(mice)), 4, seed=3) == folds  # input order is irrelevant
    assert make_folds(mice, 4, seed=4) != folds
    with pytest.raises(ParamsError, match=r"multisession.folds is 11 but there are only 10 mice"):
        make_folds(mice, 11, seed=0)
