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
from npdecode.evaluation import (
    BOOTSTRAP_SAMPLES,
    BOOTSTRAP_SEED,
    classification_metrics,
    paired_difference,
    paired_r2,
    r2_scores,
    regression_metrics,
)


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


@dataclass(frozen=True)
class RegressionTask(Task):
    """A continuous target per item (e.g. cursor velocity (B, 2) per time bin), items in
    time order; outputs are the predicted targets.

    Metrics and paired comparisons are `npdecode.evaluation`'s (R² per axis and overall,
    Pearson r, block-bootstrap intervals over `block` consecutive items). Shots are k
    items drawn as contiguous stretches that never straddle an edge of `runs` (the start
    index of each run of contiguous training items, e.g. a training block of a recording:
    default one run): k up to `chunk` items is one stretch at a random start inside a run;
    a larger k is whole `chunk`-long slots of the runs drawn without replacement (the
    last one cut to make k).
    """

    n_outputs: int
    block: int = 125
    bootstrap: int = BOOTSTRAP_SAMPLES
    seed: int = BOOTSTRAP_SEED
    runs: tuple[int, ...] = ()
    chunk: int = 125

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
        return r2_scores(y.float().cpu().numpy(), outputs.float().cpu().numpy())["r2"]

    def metrics(self, outputs: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        """`evaluation.regression_metrics`: R² per axis and overall, r, 95 % intervals."""
        return regression_metrics(y, outputs, self.block, self.bootstrap, self.seed)

    @property
    def chance(self) -> float:
        return 0.0  # predicting the test mean scores R² = 0

    def _runs(self, n: int) -> list[tuple[int, int]]:
        """[start, stop) of each run of contiguous items among n."""
        starts = [r for r in self.runs if 0 < r < n]
        edges = [0, *starts, n]
        return [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]

    def _slots(self, n: int, k: int) -> list[tuple[int, int]]:
        return [(a + i, a + i + k) for a, b in self._runs(n) for i in range(0, b - a - k + 1, k)]

    def check_shots(self, shots: Sequence[int], y: np.ndarray, where: str) -> None:
        n = len(y)
        longest = max((b - a for a, b in self._runs(n)), default=0)
        room = len(self._slots(n, self.chunk)) * self.chunk
        too_big = [k for k in shots if (k > longest if k <= self.chunk else k > room)]
        if too_big:
            raise ParamsError(
                f"{where}: fewshot asks for {max(too_big)} contiguous time bins, but the "
                f"training split has only {n} ({len(self._runs(n))} runs, the longest "
                f"{longest} bins; {room} in whole {self.chunk}-bin stretches)"
            )

    def draw_shots(self, y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        """k items as contiguous stretches inside runs (see the class docstring), sorted."""
        n = len(y)
        if k <= self.chunk:
            starts = [s for a, b in self._runs(n) for s in range(a, b - k + 1)]
            start = starts[int(rng.integers(0, len(starts)))]
            return np.arange(start, start + k)
        slots = self._slots(n, self.chunk)
        m = -(-k // self.chunk)
        pick = sorted(rng.choice(len(slots), size=m, replace=False).tolist())
        idx = np.concatenate([np.arange(*slots[i]) for i in pick])
        cut = m * self.chunk - k  # the last stretch is cut to make k
        return np.sort(idx[: len(idx) - cut] if cut else idx)

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
        """`evaluation.paired_r2`: overall R² of a minus b on the same resampled blocks."""
        return paired_r2(y, outputs_a, outputs_b, self.block, self.bootstrap, self.seed)
