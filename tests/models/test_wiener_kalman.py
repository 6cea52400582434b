"""models.wiener and models.kalman on tiny synthetic data with known answers."""

from __future__ import annotations

import numpy as np

from npdecode.models import kalman, wiener


def test_wiener_recovers_a_known_lagged_filter() -> None:
    rng = np.random.default_rng(0)
    n, h, u = 3000, 3, 4
    x = rng.normal(size=(n, h, u))
    w_true = rng.normal(size=(h * u, 2))
    y = x.reshape(n, -1) @ w_true + 0.5
    model = wiener.fit(x[:2000], y[:2000], x[2000:], y[2000:], alphas=(1e-3, 1e3))
    assert model.alpha == 1e-3  # validation prefers the small penalty on noiseless data
    np.testing.assert_allclose(model.predict(x[2000:]), y[2000:], atol=1e-3)


def test_wiener_ridge_shrinks_noise_fits() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 1, 40))  # more inputs than the data support
    y = rng.normal(size=(60, 2))  # pure noise
    model = wiener.fit(x[:40], y[:40], x[40:], y[40:])
    assert model.alpha >= 100  # validation picks a strong penalty


def test_kalman_recovers_velocity_from_linear_counts() -> None:
    rng = np.random.default_rng(2)
    n, dt = 4000, 0.05
    vel = np.zeros((n, 2))
    for k in range(1, n):  # smooth AR(1) velocity
        vel[k] = 0.95 * vel[k - 1] + rng.normal(0, 10, 2)
    pos = np.cumsum(vel, axis=0) * dt
    acc = np.gradient(vel, dt, axis=0)
    states = kalman.state(pos, vel, acc)
    h = rng.normal(0, 0.05, (30, 2))
    counts = np.zeros((n, 30))
    counts[:-2] = 5 + vel[2:] @ h.T + rng.normal(0, 0.5, (n - 2, 30))  # units lead by 2 bins
    train, val, test = np.arange(0, 2500), np.arange(2500, 3200), np.arange(3200, n)
    model = kalman.fit(counts, states, train, val)
    assert model.lag == 2  # validation finds the units' lead
    pred = model.filter(counts)[test, kalman.VELOCITY]
    r2 = 1 - ((vel[test] - pred) ** 2).sum() / ((vel[test] - vel[test].mean(0)) ** 2).sum()
    assert r2 > 0.8


def test_kalman_shift() -> None:
    z = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(kalman.shift(z, 1), [[0, 0], [0, 1], [2, 3]])
