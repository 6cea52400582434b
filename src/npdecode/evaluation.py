"""Scoring decoders: classification metrics (always fractions in [0, 1]) and few-shot draws."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


def classification_metrics(scores: np.ndarray, y: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy, top-5 accuracy and balanced accuracy of (P, C) scores against labels.

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
    present = np.unique(y)
    recall = [correct[y == c].mean() for c in present]
    return {
        "accuracy": float(correct.mean()),
        "top5": float((top == y[:, None]).any(axis=1).mean()),
        "balanced_accuracy": float(np.mean(recall)),
        "n": int(len(y)),
    }


# --- few-shot draws -----------------------------------------------------------------------


@dataclass(frozen=True)
class Draw:
    """One few-shot draw: k presentations per class, repeat `repeat`, from seed `seed`."""

    k: int
    repeat: int
    seed: int  # seeds the choice of presentations (numpy accepts any size)

    @property
    def train_seed(self) -> int:
        """The draw's seed for model init, dropout and batch order (`train.seed` is < 2**31)."""
        return self.seed % 2**31


def draw_seed(base: int, k: int, repeat: int) -> int:
    """The seed of one few-shot draw: independent across k and repeats, fixed by `base`."""
    return int(np.random.SeedSequence([base, k, repeat]).generate_state(1)[0])


def sample_shots(y: np.ndarray, n_classes: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of k presentations per class (all of a class's, if it has fewer), sorted."""
    picks = []
    for c in range(n_classes):
        idx = np.flatnonzero(y == c)
        picks.append(rng.choice(idx, size=min(k, len(idx)), replace=False))
    return np.sort(np.concatenate(picks))


def summarise_draws(runs: list[dict]) -> dict:
    """Mean and sd (over draws) of test accuracy, plus every draw, for one k."""
    acc = np.array([x["accuracy"] for x in runs])
    return {
        "mean": float(acc.mean()),
        "sd": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
        "top5_mean": float(np.mean([x["top5"] for x in runs])),
        "balanced_accuracy_mean": float(np.mean([x["balanced_accuracy"] for x in runs])),
        "repeats": runs,
    }


def fewshot_curve(
    fit_and_score: Callable[[np.ndarray, Draw], np.ndarray],
    y_train: np.ndarray,
    y_test: np.ndarray,
    n_classes: int,
    shots: tuple[int, ...],
    repeats: int,
    seed: int,
    describe: str = "",
) -> dict[str, dict]:
    """Few-shot accuracy per k: for every draw, `fit_and_score(shot indices, draw)` trains on
    those training presentations and returns (P_test, C) test scores.

    The draws depend only on (`seed`, k, repeat) and the training labels, so every learner
    scored on a session (scratch models, transfer) sees the same presentations.
    """
    out: dict[str, dict] = {}
    for k in shots:
        runs = []
        for r in range(repeats):
            draw = Draw(k, r, draw_seed(seed, k, r))
            idx = sample_shots(y_train, n_classes, k, np.random.default_rng(draw.seed))
            scores = fit_and_score(idx, draw)
            m = classification_metrics(scores, y_test, n_classes)
            runs.append({"repeat": r, "seed": draw.seed, "n_train": len(idx), **m})
        out[str(k)] = summarise_draws(runs)
        log.info("%s k=%d: %.3f ± %.3f", describe, k, out[str(k)]["mean"], out[str(k)]["sd"])
    return out
