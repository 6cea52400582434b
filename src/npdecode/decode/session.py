"""Single-session decoders from params: build, train and score any model by name.

`train_model` is the one way the pipeline trains a model on a session's split (the
train stage, transductive few-shot draws, the benchmarks): logreg by scikit-learn, the
deep models by `npdecode.decode.training.fit` with early stopping on the validation split.
Scoring, the metrics JSON of a model and its per-presentation predictions live here too,
so the train and multisession stages write the same schema. The few-shot protocol (what a
learner fitted on k presentations per image may see) is `npdecode.decode.fewshot`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from npdecode.decode.task import ClassificationTask, Task
from npdecode.decode.training import fit, fit_options, predict_logits, seed_everything
from npdecode.errors import TrainingError
from npdecode.formats.split import SessionData
from npdecode.models import DEEP, SINGLE, build_model
from npdecode.models.logreg import LogReg, fit_logreg
from npdecode.models.stgat import STGAT
from npdecode.params import TrainParams

MODELS = SINGLE  # the models a train stage may name
SHARED_TRAIN_PARAMS = ("train.device", "train.seed", "train.batch_size", "train.amp")
# the params a model's training reads (its dvc.yaml `params:`)
TRAIN_PARAMS = {
    "logreg": ("train.logreg",),
    **{name: (*SHARED_TRAIN_PARAMS, f"train.{name}") for name in DEEP},
}


def task_of(data: SessionData) -> Task:
    """The task of a session's split: its image class per presentation, named by frame."""
    return ClassificationTask(data.n_classes, data.frames)


def build_for_session(name: str, data: SessionData, train: TrainParams) -> nn.Module:
    """Seed `train.seed`, then build model `name` for `data` from params `train.<name>`."""
    if name not in SINGLE:
        raise ValueError(f"unknown model {name!r}; known: {list(SINGLE)}")
    dims: dict[str, Any] = {
        "n_units": data.n_units,
        "n_bins": data.n_bins,
        "n_classes": data.n_classes,
    }
    if name == "logreg":
        return build_model(name, dims, train.logreg)
    arch = train.deep(name).arch
    seed_everything(train.seed)
    if name == "stgat":
        model = build_model(name, {**dims, "n_edges": data.edge_index.shape[1]}, arch)
        assert isinstance(model, STGAT)
        # the unit graph, fitted on the train split by the split stage
        model.set_graph(torch.from_numpy(data.edge_index), torch.from_numpy(data.edge_weight))
        return model
    return build_model(name, dims, arch)


def train_model(
    name: str, data: SessionData, train: TrainParams, live_dir: Path | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Build and fit model `name` on `data`'s training split; (model in eval mode, fit facts).

    Deep models stop early on the validation split and keep their best weights; `live_dir`
    receives DVCLive learning curves (None: not logged).
    """
    model = build_for_session(name, data, train)
    x_train = data.normalise(data.train.X)
    if isinstance(model, LogReg):
        return fit_logreg(model, x_train, data.train.y).eval(), {}
    opts = fit_options(train, train.deep(name).fit, f"train.{name}", task_of(data))
    val = (data.normalise(data.val.X), data.val.y)
    try:
        return fit(model, (x_train, data.train.y), val, opts, live_dir)
    except TrainingError as err:
        raise TrainingError(f"session {data.session_id}: {name}: {err}") from None


def eval_batch(model: str, train: TrainParams) -> int:
    """Presentations per scoring pass: the training batch for deep models, whose memory
    (ST-GAT's above all) grows with the batch; logreg is cheap at any size."""
    return 1024 if model == "logreg" else train.batch_size


def split_logits(model: nn.Module, data: SessionData, split: str, batch_size: int) -> np.ndarray:
    """(P, C) float32 logits of `model` on one split, in eval mode on the model's device."""
    x = data.normalise(getattr(data, split).X)
    return predict_logits(model, x, batch_size).cpu().numpy()


def model_metrics(
    model: str, data: SessionData, scores: dict[str, np.ndarray], reference: dict, info: dict
) -> dict[str, Any]:
    """The metrics JSON of one model on one session (all accuracies are fractions)."""
    out: dict[str, Any] = {
        "session_id": data.session_id,
        "specimen_id": data.specimen_id,
        "model": model,
    }
    task = task_of(data)
    for name, s in scores.items():
        out[name] = task.metrics(s, getattr(data, name).y)
    out["chance"] = task.chance
    out["n_classes"] = data.n_classes
    out["n_units"] = data.n_units
    out["poisson_plugin_accuracy"] = reference["poisson_plugin"]["accuracy"]
    if out["poisson_plugin_accuracy"] > 0:
        out["ratio_to_poisson_plugin"] = out["test"]["accuracy"] / out["poisson_plugin_accuracy"]
    if reference.get("ideal"):
        out["ideal_accuracy"] = reference["ideal"]["accuracy"]
        out["ratio_to_ideal"] = out["test"]["accuracy"] / reference["ideal"]["accuracy"]
    out.update(info)
    return out


def predictions_table(data: SessionData, test_scores: np.ndarray) -> pd.DataFrame:
    """Per test item: true and predicted target (for `dvc plots` confusion matrices)."""
    return task_of(data).prediction_table(data.test.presentation_id, data.test.y, test_scores)
