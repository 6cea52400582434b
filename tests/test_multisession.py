"""Pure pieces of the shared decoder's library: folds, shot normalisation, the ridge map."""

import numpy as np
import pytest

from npdecode.decode.fewshot import shot_statistics
from npdecode.decode.shared import ridge_map
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
