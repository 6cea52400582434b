"""The shared training loop: devices, seeding, early stopping, best checkpoint, DVCLive."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from npdecode.decode.training import FitOptions, autocast_dtype, fit, predict_logits, resolve_device
from npdecode.errors import ParamsError


class Tiny(nn.Module):
    """A small decoder with dropout, so seeding matters: (B, T, U) -> (B, C)."""

    def __init__(self, n_units: int = 6, n_classes: int = 3) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * n_units, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def problem(seed: int = 0, n: int = 60, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    protos = np.random.default_rng(99).normal(0, 1, (3, 4, 6))
    return (protos[y] + rng.normal(0, noise, (n, 4, 6))).astype(np.float32), y.astype(np.int64)


def tiny(seed: int = 0) -> Tiny:
    torch.manual_seed(seed)
    return Tiny()


OPTS = FitOptions(
    lr=0.05, weight_decay=0.0, max_epochs=15, patience=15, batch_size=16, device="cpu"
)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ParamsError, match="train.device"):
        resolve_device("gpu")
    with pytest.raises(ParamsError, match="train.device"):
        resolve_device("cuda:x")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda_is_a_params_error() -> None:
    with pytest.raises(ParamsError, match="no CUDA device"):
        resolve_device("cuda:0")


def test_no_autocast_off_cuda() -> None:
    cpu = torch.device("cpu")
    assert autocast_dtype("bf16", cpu) is None
    assert autocast_dtype("fp16", cpu) is None
    assert autocast_dtype("off", torch.device("cuda")) is None
    assert autocast_dtype("fp16", torch.device("cuda")) is torch.float16


def test_same_options_same_model_on_cpu() -> None:
    train, val = problem(0), problem(1)
    a, info_a = fit(tiny(), train, val, OPTS)
    b, info_b = fit(tiny(), train, val, OPTS)
    assert info_a == info_b
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k


def test_seed_changes_the_batch_order_and_result() -> None:
    train, val = problem(0), problem(1)
    a, _ = fit(tiny(), train, val, OPTS)
    b, _ = fit(tiny(), train, val, FitOptions(**{**OPTS.__dict__, "seed": 1}))
    assert not torch.equal(a.net[2].weight, b.net[2].weight)


def test_best_val_checkpoint_is_returned() -> None:
    train, val = problem(0), problem(1, noise=2.0)
    model, info = fit(tiny(), train, val, OPTS)
    acc = (predict_logits(model, val[0]).argmax(1).numpy() == val[1]).mean()
    assert acc == pytest.approx(info["best_val_accuracy"])
    assert 1 <= info["best_epoch"] <= info["epochs"] <= OPTS.max_epochs
    assert not model.training


def test_early_stopping_after_patience() -> None:
    # labels of val unrelated to the inputs: val accuracy stops improving early
    train = problem(0)
    val = (problem(1)[0], np.random.default_rng(5).integers(0, 3, 60))
    opts = FitOptions(**{**OPTS.__dict__, "max_epochs": 200, "patience": 3})
    _, info = fit(tiny(), train, val, opts)
    assert info["epochs"] == info["best_epoch"] + 3
    assert info["epochs"] < 200


def test_learns_and_reports_facts() -> None:
    train, val = problem(0, noise=0.5), problem(1, noise=0.5)
    _, info = fit(tiny(), train, val, OPTS)
    assert info["best_val_accuracy"] > 0.9
    assert info["device"] == "cpu"
    assert info["amp"] == "off"
    assert info["n_parameters"] == 4 * 6 * 3 + 3


def test_dvclive_learning_curves(tmp_path) -> None:
    live_dir = tmp_path / "dvclive" / "tiny" / "1"
    _, info = fit(tiny(), problem(0), problem(1), OPTS, live_dir)
    curves = live_dir / "plots" / "metrics"
    for name in ("train/loss", "train/accuracy", "val/accuracy", "val/loss"):
        table = pd.read_csv(curves / f"{name}.tsv", sep="\t")
        assert list(table["step"]) == list(range(info["epochs"]))
    acc = pd.read_csv(curves / "val/accuracy.tsv", sep="\t")["accuracy"]
    assert acc.between(0, 1).all()
    assert acc.max() == pytest.approx(info["best_val_accuracy"])
    assert not (tmp_path / "dvc.yaml").exists()
    assert (live_dir / "metrics.json").exists()


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_lr_schedule(tmp_path, schedule: str) -> None:
    opts = FitOptions(**{**OPTS.__dict__, "max_epochs": 5, "patience": 5, "schedule": schedule})
    fit(tiny(), problem(0), problem(1), opts, tmp_path)
    lr = pd.read_csv(tmp_path / "plots" / "metrics" / "train" / "lr.tsv", sep="\t")["lr"]
    assert len(lr) == 5
    if schedule == "constant":
        assert (lr == OPTS.lr).all()
    else:  # cosine: decreasing every epoch, to zero after the last step
        assert (lr.diff().dropna() < 0).all()
        assert lr.iloc[-1] == pytest.approx(0.0, abs=1e-12)


def test_empty_split_is_an_error() -> None:
    x, y = problem(0)
    with pytest.raises(ValueError, match="non-empty"):
        fit(tiny(), (x, y), (x[:0], y[:0]), OPTS)


def test_diverged_training_is_an_error() -> None:
    class Diverged(Tiny):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) * float("nan")

    torch.manual_seed(0)
    with pytest.raises(FloatingPointError, match="epoch 1"):
        fit(Diverged(), problem(0), problem(1), OPTS)
