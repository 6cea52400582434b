"""Scoring decoders: classification metrics with 95 % intervals (always fractions in [0, 1]),
and paired comparisons of two decoders on one test set. (The few-shot loop over draws is
`npdecode.decode.fewshot`; what is scored how is the task's, `npdecode.decode.task`.)

Every score comes with its 95 % interval:
- accuracy and top-5: Wilson score interval of a binomial proportion over the test
  presentations (each one is a success or not);
- balanced accuracy: the mean of per-class recalls, each a binomial proportion over that
  class's presentations; a normal interval on that mean, its variance from Agresti-Coull
  adjusted recalls ((x + 2) / (n + 4)), so a class scored 0/n or n/n still has variance;
- a few-shot mean over draws: Student-t interval of the mean of the draws' accuracies;
- paired differences (two decoders, same test presentations): exact McNemar test and the
  Bonett-Price interval on one test set; over several few-shot draws, a paired bootstrap
  that resamples draws and test presentations together (see `paired_draws`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
LEVEL = 0.95
# stats.norm.ppf(0.5 + LEVEL / 2) as scipy computes it (tests/test_evaluation.py checks it):
# scipy.stats is imported only where a t or binomial quantile is needed, since importing it
# costs every stage ~0.5 CPU-s at start-up (docs/cost.md)
Z = 1.959963984540054
BOOTSTRAP_SAMPLES = 4000
BOOTSTRAP_SEED = 20240614  # paired bootstraps are seeded: same predictions, same interval


# --- intervals ----------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, z: float = Z) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion `successes / n` (Wilson 1927)."""
    if n <= 0:
        raise ValueError("an interval needs at least one trial")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # at 0 (or n) successes the bound is 0 (or 1) exactly; centre - half rounds to ~1e-17
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return float(lo), float(hi)


def balanced_accuracy_interval(
    correct: np.ndarray, y: np.ndarray, z: float = Z
) -> tuple[float, float]:
    """Normal interval of the mean per-class recall over the classes present in `y`.

    Test presentations are stratified by class (the split fixes n_c per class), so the
    recalls are independent binomial proportions and Var(mean) = sum_c p_c(1-p_c)/n_c / C^2,
    with p_c adjusted as (x_c + 2) / (n_c + 4).
    """
    classes, n = np.unique(y, return_counts=True)
    x = np.array([correct[y == c].sum() for c in classes], dtype=np.float64)
    recall = x / n
    adjusted = (x + 2) / (n + 4)
    se = np.sqrt(np.sum(adjusted * (1 - adjusted) / n)) / len(classes)
    mean = float(recall.mean())
    return float(max(0.0, mean - z * se)), float(min(1.0, mean + z * se))


def mean_interval(
    values: Sequence[float] | np.ndarray, level: float = LEVEL
) -> tuple[float, float]:
    """Student-t interval of the mean of `values` (nan, nan for fewer than two values)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float("nan"), float("nan")
    from scipy import stats

    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


def classification_metrics(scores: np.ndarray, y: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy, top-5 accuracy and balanced accuracy of (P, C) scores against labels,
    each with its 95 % interval (`<name>_lo`, `<name>_hi`; see the module docstring).

    Balanced accuracy is the mean per-class recall over the classes present in `y`.
    """
    if scores.shape != (len(y), n_classes):
        raise ValueError(f"scores have shape {scores.shape}, expected {(len(y), n_classes)}")
    if len(y) == 0:
        raise ValueError("cannot score an empty split")
    pred = scores.argmax(axis=1)
    k = min(5, n_classes)
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    correct = pred == y
    in_top = (top == y[:, None]).any(axis=1)
    present = np.unique(y)
    recall = [correct[y == c].mean() for c in present]
    out: dict[str, float] = {}
    for name, value, (lo, hi) in (
        ("accuracy", correct.mean(), wilson_interval(int(correct.sum()), len(y))),
        ("top5", in_top.mean(), wilson_interval(int(in_top.sum()), len(y))),
        ("balanced_accuracy", np.mean(recall), balanced_accuracy_interval(correct, y)),
    ):
        out.update({name: float(value), f"{name}_lo": lo, f"{name}_hi": hi})
    out["n"] = int(len(y))
    return out


# --- paired comparisons -------------------------------------------------------------------


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: of the discordant presentations, is A-only vs B-only
    a fair coin? (a binomial test on a_only out of a_only + b_only at 1/2)."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    from scipy import stats

    return float(min(1.0, 2 * stats.binom.cdf(min(a_only, b_only), n, 0.5)))


def bonett_price_interval(a_only: int, b_only: int, n: int, z: float = Z) -> tuple[float, float]:
    """Interval of the paired difference acc_A - acc_B from the discordant counts
    (Bonett & Price 2012: adjusted Wald with one pseudo-count per discordant cell)."""
    p12, p21 = (a_only + 1) / (n + 2), (b_only + 1) / (n + 2)
    d = p12 - p21
    se = np.sqrt((p12 + p21 - d * d) / (n + 2))
    return float(max(-1.0, d - z * se)), float(min(1.0, d + z * se))


def paired_difference(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, Any]:
    """A vs B on the same test presentations (boolean (P,) arrays, same order)."""
    if correct_a.shape != correct_b.shape or correct_a.ndim != 1 or len(correct_a) == 0:
        raise ValueError("paired comparison needs two non-empty (P,) arrays of the same shape")
    a_only = int(np.sum(correct_a & ~correct_b))
    b_only = int(np.sum(~correct_a & correct_b))
    lo, hi = bonett_price_interval(a_only, b_only, len(correct_a))
    return {
        "accuracy_a": float(correct_a.mean()),
        "accuracy_b": float(correct_b.mean()),
        "difference": float(correct_a.mean() - correct_b.mean()),
        "difference_lo": lo,
        "difference_hi": hi,
        "p_value": mcnemar_exact(a_only, b_only),
        "method": "exact McNemar, Bonett-Price interval",
    }


def paired_draws(
    correct_a: np.ndarray, correct_b: np.ndarray, n_boot: int = BOOTSTRAP_SAMPLES
) -> dict[str, Any]:
    """A vs B over the same few-shot draws and test presentations: (R, P) boolean arrays,
    row r of both from draw r. The difference of mean accuracies, with a paired bootstrap
    interval that resamples draws and presentations (both sources of variation of a
    few-shot mean); its p-value is the two-sided bootstrap proportion on the far side of 0."""
    if correct_a.shape != correct_b.shape or correct_a.ndim != 2 or correct_a.size == 0:
        raise ValueError("paired draws need two non-empty (R, P) arrays of the same shape")
    n_draws, n_pres = correct_a.shape
    diff = correct_a.astype(np.float64) - correct_b  # (R, P)
    w_draw, w_pres = _resampling_weights(n_draws, n_pres, n_boot)
    boot = np.einsum("br,rp,bp->b", w_draw, diff, w_pres) / (n_draws * n_pres)  # (B,)
    lo, hi = np.quantile(boot, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    p = min(1.0, 2 * min(np.mean(boot <= 0), np.mean(boot >= 0)))
    return {
        "accuracy_a": float(correct_a.mean()),
        "accuracy_b": float(correct_b.mean()),
        "difference": float(diff.mean()),
        "difference_lo": float(lo),
        "difference_hi": float(hi),
        "p_value": float(p),
        "method": f"paired bootstrap over {n_draws} draws and test presentations",
    }


@functools.lru_cache(maxsize=8)
def _resampling_weights(n_draws: int, n_pres: int, n_boot: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, R) and (B, P) counts of each draw and presentation in `n_boot` resamples with
    replacement (seeded; cached: a report compares many pairs on one test set)."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)

    def counts(n: int) -> np.ndarray:
        picks = rng.integers(0, n, size=(n_boot, n))  # (B, n) indices drawn with replacement
        rows = np.arange(n_boot)[:, None] * n
        return np.bincount((rows + picks).ravel(), minlength=n_boot * n).reshape(n_boot, n)

    w_draw, w_pres = counts(n_draws), counts(n_pres)
    w_draw.flags.writeable = w_pres.flags.writeable = False
    return w_draw, w_pres


def verdict(lo: float, hi: float, a: str, b: str) -> str:
    """'A > B', 'B > A' or 'no difference' from the 95 % interval of acc_A - acc_B."""
    if lo > 0:
        return f"{a} > {b}"
    if hi < 0:
        return f"{b} > {a}"
    return "no difference at 95 %"


# --- continuous targets (macaque reaching): R², correlation, block bootstrap ---------------
#
# A decoded trajectory's errors are correlated over time (a reach lasts ~1 s), so intervals
# resample contiguous blocks of test bins (the circular block bootstrap, Politis & Romano
# 1992: blocks start anywhere and wrap around the end, so every bin is equally likely and
# each resample has all n bins, as the point estimate does), not single bins. Default
# block: 5 s, several reaches, so blocks are nearly independent. Every interval is a percentile interval over BOOTSTRAP_SAMPLES
# resamples with a fixed seed: the same predictions give the same interval.

BLOCK_S = 5.0


def r2_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """R² of (N, D) predictions: per axis (`r2_0`, ...) and overall, variance-weighted
    (1 - sum of squared errors over all axes / total sum of squares over all axes, as
    scikit-learn's `multioutput="variance_weighted"`), plus Pearson r per axis (`r_0`...)."""
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    sse = ((y - pred) ** 2).sum(axis=0)  # (D,)
    sst = ((y - y.mean(axis=0)) ** 2).sum(axis=0)  # (D,)
    out = {"r2": float(1 - sse.sum() / sst.sum())}
    for d in range(y.shape[1]):
        out[f"r2_{d}"] = float(1 - sse[d] / sst[d])
        out[f"r_{d}"] = _pearson(y[:, d], pred[:, d])
    return out


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r; nan (no warning) when either side is constant."""
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def _block_index(n: int, block: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) row indices: ceil(n / block) blocks of `block` consecutive bins from
    random starts, wrapping past the last bin to the first, cut to n rows."""
    block = max(1, min(block, n))
    n_blocks = -(-n // block)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n, size=(n_boot, n_blocks))  # (n_boot, n_blocks)
    rows = (starts[:, :, None] + np.arange(block)) % n  # (n_boot, n_blocks, block)
    return rows.reshape(n_boot, -1)[:, :n]


def _r2_batch(y: np.ndarray, pred: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(n_boot,) overall R² of each resample `idx` (n_boot, M)."""
    ys, ps = y[idx], pred[idx]  # (n_boot, M, D)
    sse = ((ys - ps) ** 2).sum(axis=(1, 2))
    sst = ((ys - ys.mean(axis=1, keepdims=True)) ** 2).sum(axis=(1, 2))
    return 1 - sse / sst


def r2_interval(
    y: np.ndarray,
    pred: np.ndarray,
    block: int,
    n_boot: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = LEVEL,
) -> tuple[float, float]:
    """95 % block-bootstrap interval of the overall R² of consecutive test bins.

    Args:
        y, pred: (N, D) true and decoded targets of consecutive test bins, in time order.
        block: bins per bootstrap block (e.g. `round(BLOCK_S / bin width)`).
    """
    idx = _block_index(len(y), block, n_boot, seed)
    boot = _r2_batch(np.asarray(y, float), np.asarray(pred, float), idx)
    tail = (1 - level) / 2
    return float(np.quantile(boot, tail)), float(np.quantile(boot, 1 - tail))


def regression_metrics(
    y: np.ndarray,
    pred: np.ndarray,
    block: int,
    n_boot: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, float]:
    """`r2_scores` plus block-bootstrap intervals of the overall R² (`r2_lo`, `r2_hi`) and
    of each axis's (`r2_<d>_lo`, `r2_<d>_hi`), n and the block length in bins."""
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    out = r2_scores(y, pred)
    out["r2_lo"], out["r2_hi"] = r2_interval(y, pred, block, n_boot, seed)
    for d in range(y.shape[1]):
        out[f"r2_{d}_lo"], out[f"r2_{d}_hi"] = r2_interval(
            y[:, d : d + 1], pred[:, d : d + 1], block, n_boot, seed
        )
    out["n"] = int(len(y))
    out["block_bins"] = int(block)
    return out


def paired_r2(
    y: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    block: int,
    n_boot: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """Paired comparison of two decoders on the same test bins: R²(a) - R²(b).

    Both are scored on the same resampled blocks in every bootstrap draw, so what the
    blocks share (hard stretches, still periods) cancels. Returns the difference, its 95 %
    percentile interval, a two-sided bootstrap p-value (twice the smaller share of draws on
    either side of 0) and a verdict.
    """
    y = np.asarray(y, float)
    idx = _block_index(len(y), block, n_boot, seed)
    diff = _r2_batch(y, np.asarray(pred_a, float), idx) - _r2_batch(
        y, np.asarray(pred_b, float), idx
    )
    point = r2_scores(y, pred_a)["r2"] - r2_scores(y, pred_b)["r2"]
    lo, hi = (float(v) for v in np.quantile(diff, [(1 - LEVEL) / 2, (1 + LEVEL) / 2]))
    p = float(min(1.0, 2 * min((diff <= 0).mean(), (diff >= 0).mean())))
    return {
        "diff": float(point),
        "lo": lo,
        "hi": hi,
        "p": p,
        "verdict": verdict(lo, hi, "a", "b"),
        "n": int(len(y)),
    }
