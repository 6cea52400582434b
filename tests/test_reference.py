import numpy as np
import pytest

from npdecode.evaluation import classification_metrics
from npdecode.reference import PoissonPlugin, expected_counts, ideal_observer


def test_expected_counts_integrate_piecewise_constant_rates():
    rates = np.zeros((1, 4, 1))
    rates[0, :, 0] = [10.0, 20.0, 30.0, 40.0]  # Hz on 0.1 s steps
    out = expected_counts(rates, 0.1, 0.4, 2)
    np.testing.assert_allclose(out[0, :, 0], [3.0, 7.0])
    out = expected_counts(rates, 0.1, 0.4, 3)  # bins not aligned with the steps
    np.testing.assert_allclose(out.sum(), 10.0)
    np.testing.assert_allclose(out[0, 0, 0], 10 * 0.1 + 20 * (0.4 / 3 - 0.1))


def _simulate(rng, expected, n, gain_sd):
    y = np.repeat(np.arange(len(expected)), n)
    g = np.exp(rng.normal(-(gain_sd**2) / 2, gain_sd, len(y)))
    return rng.poisson(expected[y] * g[:, None, None]), y


@pytest.mark.parametrize("gain_sd", [0.0, 0.3])
def test_ideal_observer_beats_plugin_and_posteriors_normalise(gain_sd):
    rng = np.random.default_rng(0)
    expected = rng.gamma(2.0, 0.3, (6, 4, 12))  # (C, T, U)
    x_train, y_train = _simulate(rng, expected, 5, gain_sd)
    x_test, y_test = _simulate(rng, expected, 200, gain_sd)
    log_post = ideal_observer(x_test, expected, gain_sd)
    np.testing.assert_allclose(np.exp(log_post).sum(axis=1), 1.0, rtol=1e-9)
    ideal = classification_metrics(log_post, y_test, 6)["accuracy"]
    plugin = PoissonPlugin.fit(x_train, y_train, 6)
    plug = classification_metrics(plugin.log_posterior(x_test), y_test, 6)["accuracy"]
    assert ideal > plug
    assert ideal > 1 / 6 + 0.3


def test_ideal_without_gain_is_poisson_likelihood_argmax():
    rng = np.random.default_rng(1)
    expected = rng.gamma(2.0, 0.5, (3, 2, 4))
    x, _ = _simulate(rng, expected, 10, 0.0)
    flat = x.reshape(len(x), -1)
    lam = expected.reshape(3, -1)
    ll = flat @ np.log(lam).T - lam.sum(axis=1)
    np.testing.assert_array_equal(ideal_observer(x, expected, 0.0).argmax(1), ll.argmax(1))


def test_plugin_rates_are_class_means_with_half_count_prior():
    x = np.array([[[1, 0]], [[3, 2]], [[0, 5]]])  # (P=3, T=1, U=2)
    y = np.array([0, 0, 1])
    p = PoissonPlugin.fit(x, y, 2)
    np.testing.assert_allclose(p.rates, [[(4 + 0.5) / 3, (2 + 0.5) / 3], [0.5 / 2, 5.5 / 2]])


def test_ideal_with_identity_confusion_and_unit_gains_of_one_is_unchanged():
    rng = np.random.default_rng(2)
    expected = rng.gamma(2.0, 0.5, (4, 3, 5))
    x, _ = _simulate(rng, expected, 6, 0.3)
    plain = ideal_observer(x, expected, 0.3)
    both = ideal_observer(x, expected, 0.3, np.ones((len(x), 5)), np.eye(4))
    np.testing.assert_allclose(both, plain, atol=1e-9)


def test_ideal_mixes_likelihoods_over_the_lapse_kernel():
    """p(x | c) = sum_k K[c, k] p(x | k): checked against the mixture written out by hand."""
    rng = np.random.default_rng(3)
    expected = rng.gamma(2.0, 0.5, (3, 1, 4))  # (K, T, U), no gain
    x, _ = _simulate(rng, expected, 4, 0.0)
    kernel = np.array([[0.8, 0.2, 0.0], [0.1, 0.9, 0.0]])  # 2 labelled classes, 3 responses
    lam = expected.reshape(3, -1)
    flat = x.reshape(len(x), -1)
    lik = np.exp(flat @ np.log(lam).T - lam.sum(axis=1))  # (P, K) up to a factor of x
    want = lik @ kernel.T
    want /= want.sum(axis=1, keepdims=True)
    got = np.exp(ideal_observer(x, expected, 0.0, confusion=kernel))
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_ideal_scales_rates_by_known_unit_gains():
    """A unit switched off (gain 0) on a presentation carries no evidence there."""
    expected = np.array([[[1.0, 5.0]], [[1.0, 0.2]]])  # unit 1 tells the classes apart
    x = np.array([[[1, 0]]])
    on = ideal_observer(x, expected, 0.0, np.ones((1, 2)))
    off = ideal_observer(x, expected, 0.0, np.array([[1.0, 0.0]]))
    assert on[0].argmax() == 1  # zero spikes of unit 1: the low-rate class
    np.testing.assert_allclose(np.exp(off[0]), [0.5, 0.5])
