import numpy as np
import pytest

from npdecode.evaluation import classification_metrics


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


def test_metrics_reject_wrong_shapes():
    with pytest.raises(ValueError, match="expected"):
        classification_metrics(np.zeros((3, 2)), np.zeros(3, int), 4)
