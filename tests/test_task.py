"""The task object: the training and few-shot loops take a regression task as they take the
classification one (tiny random arrays; no data set needed)."""

import logging

import numpy as np
import pytest
import torch
from torch import nn

from npdecode.decode.fewshot import fewshot_curve
from npdecode.decode.task import ClassificationTask, RegressionTask
from npdecode.decode.training import FitOptions, fit, fit_fixed, predict_logits
from npdecode.errors import ParamsError
from npdecode.evaluation import classification_metrics, paired_r2, regression_metrics


class Linear(nn.Module):
    """x (B, T, U) -> (B, D): a linear map of the summed counts."""

    def __init__(self, n_units: int, n_out: int) -> None:
        super().__init__()
        self.lin = nn.Linear(n_units, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.sum(dim=1))


def velocity_problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts (n, 2, 6) whose summed units 0-1 are a 2-D velocity plus a little noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2, 6)).astype(np.float32)
    y = (x.sum(axis=1)[:, :2] + 0.1 * rng.normal(size=(n, 2))).astype(np.float32)
    return x, y


def test_the_training_loop_fits_a_regression_task_and_selects_on_r2():
    task = RegressionTask(n_outputs=2, bootstrap=200, block=10)
    train, val = velocity_problem(200, 0), velocity_problem(100, 1)
    opts = FitOptions(
        lr=3e-2, weight_decay=0.0, max_epochs=30, patience=30, batch_size=32, task=task
    )
    torch.manual_seed(0)
    model, info = fit(Linear(6, 2), train, val, opts)
    assert "best_val_r2" in info and "best_val_accuracy" not in info
    out = predict_logits(model, val[0], 64).numpy()
    m = task.metrics(out, val[1])
    assert m["r2"] > 0.9  # the target is linear in the counts: a fitted map explains it
    assert m["r2_lo"] <= m["r2"] <= m["r2_hi"]
    assert all(m[f"r2_{d}_lo"] <= m[f"r2_{d}"] <= m[f"r2_{d}_hi"] for d in (0, 1))
    # one piece of code: the task's figures are evaluation.py's
    assert m == regression_metrics(val[1], out, 10, 200)
    assert task.paired(out, out * 0.5, val[1]) == paired_r2(val[1], out, out * 0.5, 10, 200)
    assert task.metrics(np.repeat(val[1].mean(0, keepdims=True), 100, 0), val[1])[
        "r2"
    ] == pytest.approx(task.chance)


def test_the_few_shot_loop_draws_contiguous_time_for_a_regression_task(caplog):
    task = RegressionTask(n_outputs=2, bootstrap=100, block=10)
    (x, y), (xt, yt) = velocity_problem(300, 2), velocity_problem(80, 3)
    seen: list[np.ndarray] = []

    def fit_group(group):
        outs = []
        for idx, draw in group:
            seen.append(idx)
            model, _ = fit_fixed(
                Linear(6, 2),
                (x[idx], y[idx]),
                FitOptions(lr=3e-2, max_epochs=20, batch_size=16, seed=draw.train_seed, task=task),
            )
            outs.append(predict_logits(model, xt, 64).numpy())
        return outs

    with caplog.at_level(logging.INFO, logger="npdecode.decode.fewshot"):
        curve, kept = fewshot_curve(fit_group, task, y, yt, (20, 100), 2, 0, "velocity")
    progress = [r.getMessage().rsplit("(", 1)[1] for r in caplog.records if "k=" in r.message]
    assert progress == ["draws done 2 / 4)", "draws done 4 / 4)"]  # a long curve says how far
    assert set(curve) == {"20", "100"} and kept[100].shape == (2, 80, 2)  # outputs are kept
    assert all(np.array_equal(i, np.arange(i[0], i[0] + len(i))) for i in seen)  # contiguous
    assert curve["100"]["mean"] > 0.5 and curve["100"]["repeats"][0]["r2_lo"] is not None
    with pytest.raises(ParamsError, match="400 contiguous time bins"):
        fewshot_curve(fit_group, task, y, yt, (400,), 1, 0, "velocity")


def test_regression_shots_never_straddle_a_run_edge():
    # runs of training items: [0, 50) [50, 130) [130, 300) (e.g. training blocks)
    task = RegressionTask(n_outputs=2, runs=(50, 130), chunk=40)
    edges = {50, 130}
    y = np.zeros((300, 2))
    rng = np.random.default_rng(0)
    for k in (30, 40, 100, 200):
        for _ in range(50):
            idx = task.draw_shots(y, k, rng)
            assert len(idx) == k == len(set(idx.tolist()))
            if k <= 40:  # one stretch: it never passes over a run edge
                assert np.array_equal(idx, np.arange(idx[0], idx[0] + k))
                assert not any(idx[0] < e <= idx[-1] for e in edges)
            else:  # whole 40-item slots of runs (one cut to make k)
                per_run = np.bincount(np.searchsorted([50, 130], idx, side="right"), minlength=3)
                assert sum(int(c) % 40 != 0 for c in per_run) <= 1
    task.check_shots([200], y, "s")  # 5 slots of 40: 50 -> 1, 80 -> 2, 170 -> 4 = 7 slots
    with pytest.raises(ParamsError, match="300 contiguous time bins"):
        task.check_shots([300], y, "s")
    with pytest.raises(ParamsError, match="the longest 170 bins"):
        RegressionTask(n_outputs=2, runs=(50, 130), chunk=400).check_shots([200], y, "s")


def test_the_classification_task_is_todays_metrics_and_shots():
    rng = np.random.default_rng(0)
    scores, y = rng.normal(size=(40, 4)), rng.integers(0, 4, 40)
    task = ClassificationTask(4, np.array([-1, 7, 8, 9]))
    assert task.metrics(scores, y) == classification_metrics(scores, y, 4)
    assert task.chance == 0.25
    idx = task.draw_shots(y, 2, np.random.default_rng(1))
    assert np.array_equal(np.bincount(y[idx], minlength=4), [2, 2, 2, 2])
    table = task.prediction_table(np.arange(40), y, scores)
    assert set(table["actual"]) <= {-1, 7, 8, 9}
    with pytest.raises(ParamsError, match="image \\(frame\\)"):
        task.check_shots([100], y, "s1")
    assert task == ClassificationTask(4, np.array([-1, 7, 8, 9])) != ClassificationTask(4)
