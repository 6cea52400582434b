import math

import numpy as np
import pytest
from scipy import stats

from npdecode import evaluation
from npdecode.decode.fewshot import check_shots
from npdecode.errors import ParamsError
from npdecode.evaluation import (
    Z,
    balanced_accuracy_interval,
    bonett_price_interval,
    classification_metrics,
    mcnemar_exact,
    mean_interval,
    paired_difference,
    paired_draws,
    verdict,
    wilson_interval,
)


def test_metrics_are_fractions_with_known_values():
    scores = np.array(
        [
            [0.9, 0.1, 0.0, 0.0, 0.0, 0.0],
            [0.1, 0.9, 0.0, 0.0, 0.0, 0.0],
            [0.9, 0.0, 0.1, 0.0, 0.0, 0.0],
            [0.5, 0.4, 0.0, 0.3, 0.2, 1.0],
        ]
    )
    y = np.array([0, 1, 2, 2])
    m = classification_metrics(scores, y, 6)
    assert m["accuracy"] == 0.5
    assert m["balanced_accuracy"] == pytest.approx((1 + 1 + 0) / 3)
    # the last row ranks class 2 sixth of six: outside the top 5
    assert m["top5"] == 0.75
    assert m["n"] == 4
    assert (m["accuracy_lo"], m["accuracy_hi"]) == wilson_interval(2, 4)
    assert (m["top5_lo"], m["top5_hi"]) == wilson_interval(3, 4)
    for name in ("accuracy", "top5", "balanced_accuracy"):
        assert 0 <= m[f"{name}_lo"] <= m[name] <= m[f"{name}_hi"] <= 1


def test_metrics_reject_wrong_shapes():
    with pytest.raises(ValueError, match="expected"):
        classification_metrics(np.zeros((3, 2)), np.zeros(3, int), 4)


# --- intervals against closed forms -------------------------------------------------------


def test_wilson_interval_on_known_counts():
    # 8 of 10, z = 1.96: the textbook (0.490, 0.943)
    lo, hi = wilson_interval(8, 10, z=1.96)
    centre = (0.8 + 1.96**2 / 20) / (1 + 1.96**2 / 10)
    half = 1.96 / (1 + 1.96**2 / 10) * math.sqrt(0.8 * 0.2 / 10 + 1.96**2 / 400)
    assert (lo, hi) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert (round(lo, 3), round(hi, 3)) == (0.490, 0.943)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    for n in (7, 119, 1183):  # exactly, not a rounding residue above the score itself
        assert wilson_interval(0, n)[0] == 0.0 and wilson_interval(n, n)[1] == 1.0


def test_z_is_scipys_normal_quantile_to_the_bit():
    # evaluation.Z is a literal (scipy.stats is not imported at start-up); every interval
    # written so far used scipy's value, so the literal must be that value exactly
    assert float(stats.norm.ppf(0.5 + evaluation.LEVEL / 2)) == Z


@pytest.mark.parametrize(("x", "n"), [(1, 7), (37, 119), (444, 1183), (1183, 1183), (0, 50)])
def test_wilson_bounds_are_where_the_score_test_is_at_z(x, n):
    # the Wilson interval is every p whose score statistic |x/n - p| / sqrt(p(1-p)/n) <= z
    for bound in wilson_interval(x, n):
        if 0 < bound < 1:
            score = abs(x / n - bound) / math.sqrt(bound * (1 - bound) / n)
            assert score == pytest.approx(Z, rel=1e-9)


def test_balanced_accuracy_interval_on_known_counts():
    y = np.repeat([0, 1], 10)
    correct = np.r_[np.arange(10) < 5, np.ones(10, bool)]  # recalls 0.5 and 1.0
    a, b = 7 / 14, 12 / 14  # (x + 2) / (n + 4)
    se = math.sqrt(a * (1 - a) / 10 + b * (1 - b) / 10) / 2
    lo, hi = balanced_accuracy_interval(correct, y)
    assert (lo, hi) == pytest.approx((0.75 - Z * se, min(1.0, 0.75 + Z * se)), abs=1e-12)


def test_mean_interval_is_student_t():
    lo, hi = mean_interval([0.1, 0.2, 0.3])
    t = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # t(0.975) with 2 df, in closed form
    half = t * 0.1 / math.sqrt(3)  # t * sd / sqrt(n)
    assert (lo, hi) == pytest.approx((0.2 - half, 0.2 + half), abs=1e-12)
    assert all(math.isnan(v) for v in mean_interval([0.3]))


# --- paired comparisons -------------------------------------------------------------------


def test_mcnemar_exact_on_known_counts():
    # 10 presentations only A gets right, 2 only B: 2 * P(X <= 2), X ~ Bin(12, 1/2)
    assert mcnemar_exact(10, 2) == pytest.approx(2 * (1 + 12 + 66) / 4096, abs=1e-12)
    assert mcnemar_exact(2, 10) == mcnemar_exact(10, 2)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(30, 9) == pytest.approx(stats.binomtest(30, 39).pvalue, rel=1e-9)


def test_bonett_price_interval_on_known_counts():
    p12, p21 = 11 / 102, 3 / 102
    d = p12 - p21
    se = math.sqrt((p12 + p21 - d * d) / 102)
    assert bonett_price_interval(10, 2, 100) == pytest.approx((d - Z * se, d + Z * se))


def test_paired_difference_on_a_constructed_case():
    # B is right on presentations 0..59, A on 0..69 and also misses nothing B gets:
    # 10 discordant, all for A
    a = np.arange(100) < 70
    b = np.arange(100) < 60
    out = paired_difference(a, b)
    assert out["difference"] == pytest.approx(0.10)
    assert out["difference_lo"] > 0 and out["p_value"] == pytest.approx(2 / 2**10)
    assert verdict(out["difference_lo"], out["difference_hi"], "A", "B") == "A > B"
    # the same accuracy from disjoint successes: no paired evidence either way
    same = paired_difference(np.arange(100) < 50, np.arange(100) >= 50)
    assert same["difference"] == 0 and same["difference_lo"] < 0 < same["difference_hi"]
    assert same["p_value"] == 1.0
    assert verdict(same["difference_lo"], same["difference_hi"], "A", "B").startswith("no ")


def test_paired_draws_matches_the_single_set_interval_and_repeats():
    rng = np.random.default_rng(0)
    b = rng.random((1, 2000)) < 0.5
    a = b.copy()
    flip = rng.choice(2000, 120, replace=False)
    a[0, flip[:90]] = True  # A gains some presentations B misses ...
    a[0, flip[90:]] = False  # ... and loses a few
    boot = paired_draws(a, b)
    exact = paired_difference(a[0], b[0])
    assert boot["difference"] == pytest.approx(exact["difference"], abs=1e-12)
    # one draw: the bootstrap over presentations approximates the closed-form interval
    assert boot["difference_lo"] == pytest.approx(exact["difference_lo"], abs=0.006)
    assert boot["difference_hi"] == pytest.approx(exact["difference_hi"], abs=0.006)
    assert paired_draws(a, b) == boot  # seeded: same predictions, same interval


def test_paired_draws_counts_the_spread_between_draws():
    # A beats B by 0.05 on average, but by +0.25 on one draw and -0.0 on the others
    rng = np.random.default_rng(1)
    b = rng.random((5, 1000)) < 0.4
    a = b.copy()
    a[0, ~b[0]] = rng.random((~b[0]).sum()) < 0.42  # ~ +0.25 on draw 0 only
    out = paired_draws(a, b)
    assert out["difference"] == pytest.approx(a.mean() - b.mean())
    assert out["difference_lo"] < 0.02 < out["difference"] < out["difference_hi"]
    # the draws' spread makes it wider than pooling every draw as one test set
    pooled = paired_difference(a.ravel(), b.ravel())
    assert out["difference_hi"] - out["difference_lo"] > 2 * (
        pooled["difference_hi"] - pooled["difference_lo"]
    )


def test_check_shots_names_the_param_and_the_largest_k():
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    check_shots((1, 2), y, 3, "session 9")
    with pytest.raises(ParamsError, match=r"session 9: fewshot.shots .* k = 5 .*frame\) 7 .* 2$"):
        check_shots((1, 5), y, 3, "session 9", frames=np.array([-1, 7, 8]))
    with pytest.raises(ParamsError, match="largest k available is 0"):
        check_shots((1,), y, 4, "session 9")  # class 3 has no training presentation


def test_a_single_draw_has_no_interval_of_the_mean_and_stays_valid_json():
    import json

    from npdecode.decode.fewshot import summarise_draws

    run = {"accuracy": 0.5, "top5": 0.9, "balanced_accuracy": 0.5}
    one = summarise_draws([run])
    assert one["mean_lo"] is None and one["mean_hi"] is None and one["sd"] == 0.0
    json.dumps(one, allow_nan=False)  # what write_json does: nan would raise
    two = summarise_draws([run, {**run, "accuracy": 0.7}])
    assert two["mean_lo"] < 0.6 < two["mean_hi"]


# --- continuous targets (macaque reaching) ---------------------------------------------------


def test_r2_scores_known_values() -> None:
    y = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])
    pred = y.copy()
    pred[:, 1] = 3.0  # axis 1 predicted by its mean: R² 0
    out = evaluation.r2_scores(y, pred)
    assert out["r2_0"] == 1.0 and out["r2_1"] == 0.0
    # variance-weighted: axis 1 has 4x the variance of axis 0 -> overall 1 - 20/25
    assert out["r2"] == pytest.approx(0.2)
    assert out["r_0"] == pytest.approx(1.0) and math.isnan(out["r_1"])


def test_block_bootstrap_interval_covers_and_narrows() -> None:
    rng = np.random.default_rng(0)
    widths = []
    for n in (500, 5000):
        y = np.cumsum(rng.normal(size=(n, 2)), axis=0) * 0.1 + rng.normal(size=(n, 2))
        pred = y + rng.normal(size=(n, 2))
        point = evaluation.r2_scores(y, pred)["r2"]
        lo, hi = evaluation.r2_interval(y, pred, block=25, n_boot=1000)
        assert lo < point < hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2


def test_block_bootstrap_is_wider_than_bins_for_correlated_errors() -> None:
    rng = np.random.default_rng(1)
    n = 4000
    y = rng.normal(size=(n, 1))
    slow = np.repeat(rng.normal(size=(n // 100, 1)), 100, axis=0)  # errors constant for 100 bins
    pred = y + slow
    single = evaluation.r2_interval(y, pred, block=1)
    blocks = evaluation.r2_interval(y, pred, block=100)
    assert blocks[1] - blocks[0] > 2 * (single[1] - single[0])


def test_paired_r2() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=(2000, 2))
    good = y + 0.3 * rng.normal(size=y.shape)
    bad = y + 1.0 * rng.normal(size=y.shape)
    same = evaluation.paired_r2(y, good, good, block=50)
    assert same["diff"] == 0 and same["lo"] == 0 and same["hi"] == 0
    out = evaluation.paired_r2(y, good, bad, block=50)
    assert out["lo"] > 0 and out["verdict"] == "a > b" and out["p"] < 0.01
    again = evaluation.paired_r2(y, good, bad, block=50)
    assert again == out  # seeded
