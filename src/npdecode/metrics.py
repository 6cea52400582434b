"""Classification metrics, always as fractions in [0, 1]."""

from __future__ import annotations

import numpy as np


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
