"""A decoding task: what a target is and everything that depends on it, in one object.

The training loop, the few-shot loop, the shared decoder and transfer take a `Task` and
never ask which kind it is. `ClassificationTask` is the image class of a presentation
(today's data); `RegressionTask` a continuous target per item (e.g. a 2-D cursor velocity
per time bin), with shots drawn as contiguous stretches of the recording.

A task owns: the output size of a model, the loss on model outputs, the score that
selects the best epoch (higher is better), the metrics with 95 % intervals, the chance
(reference) level, how the shots of a few-shot draw are drawn, what is kept of one draw's
predictions, the prediction table written per item, and the paired comparison of two
decoders on one test set.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from npdecode.errors import ParamsError
from npdecode.evaluation import LEVEL, classification_metrics, paired_difference


class Task(ABC):
    """The interface every task implements (see the module docstring)."""

    score_name: ClassVar[str]  # the selection score in learning curves and metrics
    train_score_name: ClassVar[str]  # the score summed over training batches

    @property
    @abstractmethod
    def output_size(self) -> int:
        """Outputs per item of a model (classes, or target dimensions)."""

    @abstractmethod
    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean training loss of `outputs` (B, output_size) against targets `y`."""

    @abstractmethod
    def item_losses(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss of each item (N,) of outputs (N, output_size) (batched draws)."""

    @abstractmethod
    def item_scores(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training score of each item (outputs.shape[:-1]), summed over batches."""

    @abstractmethod
    def score(self, outputs: torch.Tensor, y: torch.Tensor) -> float:
        """The selection score of pooled outputs (higher is better: early stopping)."""

    @abstractmethod
    def metrics(self, outputs: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        """Every metric of `outputs` against `y`, each with its 95 % interval."""

    @property
    @abstractmethod
    def chance(self) -> float:
        """The score of a decoder that ignores the spikes."""

    @abstractmethod
    def check_shots(self, shots: Sequence[int], y: np.ndarray, where: str) -> None:
        """Refuse (ParamsError) a shot count the training targets `y` cannot supply."""

    @abstractmethod
    def draw_shots(self, y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        """Sorted indices of the training items one draw with k shots may see."""

    @abstractmethod
    def summary_score(self, metrics: dict[str, Any]) -> float:
        """The one number of a metrics dict that few-shot curves average over draws."""

    @abstractmethod
    def kept_prediction(self, outputs: np.ndarray) -> np.ndarray:
        """What is stored of one draw's test outputs (classes; or the outputs)."""

    @abstractmethod
    def prediction_table(
        self, item_id: np.ndarray, y: np.ndarray, outputs: np.ndarray
    ) -> pd.DataFrame:
        """Per test item: its id, the true and the predicted target."""

    @abstractmethod
    def paired(self, outputs_a: np.ndarray, outputs_b: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        """Decoder a minus decoder b on one test set, with its 95 % interval."""


@dataclass(frozen=True, eq=False)
class ClassificationTask(Task):
    """One class per item (an image per presentation); outputs are logits (B, C).

    `names` (C,) label each class in prediction tables (the image's frame number).
    """

    n_classes: int
    names: np.ndarray | None = None

    score_name: ClassVar[str] = "accuracy"
    train_score_name: ClassVar[str] = "accuracy"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ClassificationTask)
            and self.n_classes == other.n_classes
            and (self.names is None) == (other.names is None)
            and (self.names is None or np.array_equal(self.names, other.names))  # type: ignore[arg-type]
        )

    def __hash__(self) -> int:
        return hash((self.n_classes, None if self.names is None else self.names.tobytes()))

    @property
    def output_size(self) -> int:
        return self.n_classes

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, y)

    def item_losses(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, y, reduction="none")

    def item_scores(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return outputs.argmax(-1) == y  # correct or not

    def score(self, outputs: torch.Tensor, y: torch.Tensor) -> float:
        return (outputs.argmax(1) == y).sum().item() / len(y)

    def metrics(self, outputs: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        return classification_metrics(outputs, y, self.n_classes)

    @property
    def chance(self) -> float:
        return 1.0 / self.n_classes

    def check_shots(self, shots: Sequence[int], y: np.ndarray, where: str) -> None:
        """k presentations per class: refuse a k larger than some class has."""
        counts = np.bincount(y, minlength=self.n_classes)
        k_max, worst = int(counts.min()), int(counts.argmin())
        too_big = [k for k in shots if k > k_max]
        if too_big:
            image = (
                f"image (frame) {int(self.names[worst])}"
                if self.names is not None
                else f"class {worst}"
            )
            raise ParamsError(
                f"{where}: fewshot.shots asks for k = {max(too_big)} presentations per image, but "
                f"{image} has only {k_max} in the training split: the largest k available is {k_max}"
            )

    def draw_shots(self, y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        """k presentations per class, drawn without replacement, sorted."""
        picks = []
        for c in range(self.n_classes):
            idx = np.flatnonzero(y == c)
            if len(idx) < k:
                raise ValueError(f"class {c} has {len(idx)} presentations, fewer than k = {k}")
            picks.append(rng.choice(idx, size=k, replace=False))
        return np.sort(np.concatenate(picks))

    def summary_score(self, metrics: dict[str, Any]) -> float:
        return float(metrics["accuracy"])

    def kept_prediction(self, outputs: np.ndarray) -> np.ndarray:
        return outputs.argmax(axis=1)

    def prediction_table(
        self, item_id: np.ndarray, y: np.ndarray, outputs: np.ndarray
    ) -> pd.DataFrame:
        names = self.names if self.names is not None else np.arange(self.n_classes)
        return pd.DataFrame(
            {
                "presentation_id": item_id,
                "actual": names[y],
                "predicted": names[outputs.argmax(axis=1)],
            }
        )

    def paired(self, outputs_a: np.ndarray, outputs_b: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        """Accuracy difference: exact McNemar test, Bonett-Price interval."""
        return paired_difference(outputs_a.argmax(axis=1) == y, outputs_b.argmax(axis=1) == y)


def _block_bootstrap(n: int, block: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) indices of a moving-block bootstrap over n items in time order."""
    rng = np.random.default_rng(seed)
    block = max(1, min(block, n))
    n_blocks = -(-n // block)
    starts = rng.integers(0, n - block + 1, size=(n_boot, n_blocks))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(n_boot, -1)
    return idx[:, :n]


def r2_scores(outputs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """R² per target axis and the variance-weighted overall R² (items in rows)."""
    resid = ((y - outputs) ** 2).sum(axis=0)
    total = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    per_axis = 1.0 - resid / np.where(total > 0, total, np.nan)
    overall = 1.0 - resid.sum() / total.sum() if total.sum() > 0 else float("nan")
    return per_axis, float(overall)


@dataclass(frozen=True)
class RegressionTask(Task):
    """A continuous target per item (e.g. cursor velocity (B, 2) per time bin), items in
    time order; outputs are the predicted targets. Shots are k contiguous items (k time
    bins of the recording: seconds or minutes at the bin width) starting at a random bin;
    intervals come from a moving-block bootstrap (`block` items) that keeps the
    autocorrelation of neighbouring bins."""

    n_outputs: int
    block: int = 50
    bootstrap: int = 1000
    seed: int = 0

    score_name: ClassVar[str] = "r2"
    train_score_name: ClassVar[str] = "neg_sse"

    @property
    def output_size(self) -> int:
        return self.n_outputs

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(outputs, y)

    def item_losses(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ((outputs - y) ** 2).mean(dim=-1)

    def item_scores(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return -((outputs - y) ** 2).sum(dim=-1)

    def score(self, outputs: torch.Tensor, y: torch.Tensor) -> float:
        return r2_scores(outputs.float().cpu().numpy(), y.float().cpu().numpy())[1]

    def metrics(self, outputs: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        """R² per axis and overall, each with a block-bootstrap 95 % interval."""
        per_axis, overall = r2_scores(outputs, y)
        boots = [
            r2_scores(outputs[i], y[i])
            for i in _block_bootstrap(len(y), self.block, self.bootstrap, self.seed)
        ]
        q = [(1 - LEVEL) / 2 * 100, (1 + LEVEL) / 2 * 100]
        axis_lo, axis_hi = np.nanpercentile(np.array([b[0] for b in boots]), q, axis=0)
        lo, hi = np.nanpercentile(np.array([b[1] for b in boots]), q)
        return {
            "r2": overall,
            "r2_lo": float(lo),
            "r2_hi": float(hi),
            "r2_axes": per_axis.tolist(),
            "r2_axes_lo": axis_lo.tolist(),
            "r2_axes_hi": axis_hi.tolist(),
            "n": len(y),
        }

    @property
    def chance(self) -> float:
        return 0.0  # predicting the test mean scores R² = 0

    def check_shots(self, shots: Sequence[int], y: np.ndarray, where: str) -> None:
        too_big = [k for k in shots if k > len(y)]
        if too_big:
            raise ParamsError(
                f"{where}: fewshot.shots asks for {max(too_big)} contiguous time bins, but the "
                f"training split has only {len(y)}"
            )

    def draw_shots(self, y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        """k contiguous items from a random start."""
        start = int(rng.integers(0, len(y) - k + 1))
        return np.arange(start, start + k)

    def summary_score(self, metrics: dict[str, Any]) -> float:
        return float(metrics["r2"])

    def kept_prediction(self, outputs: np.ndarray) -> np.ndarray:
        return outputs

    def prediction_table(
        self, item_id: np.ndarray, y: np.ndarray, outputs: np.ndarray
    ) -> pd.DataFrame:
        cols: dict[str, Any] = {"item_id": item_id}
        for d in range(self.n_outputs):
            cols[f"actual_{d}"] = y[:, d]
            cols[f"predicted_{d}"] = outputs[:, d]
        return pd.DataFrame(cols)

    def paired(self, outputs_a: np.ndarray, outputs_b: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        """Overall R² of a minus b, with a paired block-bootstrap 95 % interval."""
        diff = r2_scores(outputs_a, y)[1] - r2_scores(outputs_b, y)[1]
        idx = _block_bootstrap(len(y), self.block, self.bootstrap, self.seed)
        boots = np.array(
            [r2_scores(outputs_a[i], y[i])[1] - r2_scores(outputs_b[i], y[i])[1] for i in idx]
        )
        lo, hi = np.nanpercentile(boots, [(1 - LEVEL) / 2 * 100, (1 + LEVEL) / 2 * 100])
        return {"difference": diff, "lo": float(lo), "hi": float(hi), "n": len(y)}
