"""Stage `train_<model>`: fit one model on one session's split and evaluate it.

Model selection uses the validation split; the test split is scored once, at the end,
with the selected model. Writes the checkpoint, a metrics JSON (accuracy as a fraction,
top-5, balanced accuracy, n per split, chance, ideal-observer ratio) and per-presentation
test predictions for DVC's confusion-matrix plot. The deep models (lstm, transformer,
stgat) are trained by `npdecode.training.fit`, which also writes DVCLive learning curves.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from npdecode.checkpoint import save_checkpoint
from npdecode.cli import run_stage
from npdecode.data import SessionData, load_session
from npdecode.io import read_json, write_csv, write_json
from npdecode.metrics import classification_metrics
from npdecode.models import CONFIGS
from npdecode.models.logreg import LogRegConfig, fit_logreg
from npdecode.params import FitParams, Params, as_dict
from npdecode.paths import Layout
from npdecode.runinfo import measure
from npdecode.training import FitOptions, fit, predict_logits, seed_everything

SHARED = ("train.device", "train.seed", "train.batch_size", "train.amp")
PARAMS = {
    "logreg": ("train.logreg",),
    "lstm": (*SHARED, "train.lstm"),
    "transformer": (*SHARED, "train.transformer"),
    "stgat": (*SHARED, "train.stgat"),
}
log = logging.getLogger(__name__)


def train_logreg(
    data: SessionData, params: Params, live_dir: Path | None
) -> tuple[nn.Module, dict]:
    p = params.train.logreg
    cfg = LogRegConfig(data.n_units, data.n_bins, data.n_classes, features=p.features)
    model = fit_logreg(data.normalise(data.train.X), data.train.y, cfg, C=p.C, max_iter=p.max_iter)
    return model, {}


def train_deep(
    name: str, data: SessionData, params: Params, live_dir: Path | None
) -> tuple[nn.Module, dict]:
    """Build deep model `name` from params `train.<name>` and fit it (early stopping on val)."""
    p: FitParams = getattr(params.train, name)
    model = build_deep(name, data, p, params.train.seed)
    fit_fields = {f.name for f in dataclasses.fields(FitParams)}
    opts = FitOptions(
        **{k: getattr(p, k) for k in fit_fields},
        batch_size=params.train.batch_size,
        seed=params.train.seed,
        device=params.train.device,
        amp=params.train.amp,
    )
    train = (data.normalise(data.train.X), data.train.y)
    val = (data.normalise(data.val.X), data.val.y)
    return fit(model, train, val, opts, live_dir)


def build_deep(name: str, data: SessionData, p: FitParams, seed: int) -> nn.Module:
    """Seed, then build model `name` for `data` with the architecture fields of params `p`.

    Every field of `p` is either a FitParams field or a field of the model's config: a
    params field the model would ignore is an error, not a silent no-op.
    """
    cfg_cls, model_cls = CONFIGS[name]
    cfg_fields = {f.name for f in dataclasses.fields(cfg_cls)}
    fit_fields = {f.name for f in dataclasses.fields(FitParams)}
    arch = {k: v for k, v in as_dict(p).items() if k not in fit_fields}
    unused = set(arch) - cfg_fields
    if unused:
        raise TypeError(f"train.{name} has fields {sorted(unused)} that {cfg_cls.__name__} lacks")
    dims: dict[str, Any] = {
        "n_units": data.n_units,
        "n_bins": data.n_bins,
        "n_classes": data.n_classes,
    }
    if "n_edges" in cfg_fields:
        dims["n_edges"] = data.edge_index.shape[1]
    seed_everything(seed)
    model = model_cls(cfg_cls(**dims, **arch))
    if hasattr(model, "set_graph"):  # the unit graph, fitted on the train split by `split`
        model.set_graph(torch.from_numpy(data.edge_index), torch.from_numpy(data.edge_weight))
    return model


# (data, params, DVCLive dir or None) -> (fitted model, extra metrics)
TRAINERS: dict[str, Callable[[SessionData, Params, Path | None], tuple[nn.Module, dict]]] = {
    "logreg": train_logreg,
    "lstm": functools.partial(train_deep, "lstm"),
    "transformer": functools.partial(train_deep, "transformer"),
    "stgat": functools.partial(train_deep, "stgat"),
}


def main(params: Params, model: str, session_id: int, root: Path = Path(".")) -> None:
    """Train `model` on session `session_id`."""
    layout = Layout(root)
    data = load_session(layout.split_dir(session_id), session_id)
    batch = eval_batch(model, params)
    with measure() as cost:
        net, info = TRAINERS[model](data, params, layout.live_dir(model, session_id))
        scores = {name: logits(net, data, name, batch) for name in ("train", "val", "test")}
    reference = read_json(layout.reference(session_id))
    metrics = model_metrics(model, data, scores, reference, info)
    metrics.update(cost)
    save_checkpoint(layout.model(model, session_id), model, net, data)
    write_json(layout.metrics(model, session_id), metrics)
    write_csv(predictions_table(data, scores["test"]), layout.predictions(model, session_id))
    log.info(
        "%s on session %d: test accuracy %.3f (val %.3f, chance %.4f)",
        model,
        session_id,
        metrics["test"]["accuracy"],
        metrics["val"]["accuracy"],
        metrics["chance"],
    )


def eval_batch(model: str, params: Params) -> int:
    """Presentations per scoring pass: the training batch for deep models, whose memory
    (ST-GAT's above all) grows with the batch; logreg is cheap at any size."""
    return 1024 if model == "logreg" else params.train.batch_size


def logits(model: nn.Module, data: SessionData, split: str, batch_size: int) -> np.ndarray:
    """(P, C) float32 logits of `model` on one split, in eval mode on the model's device."""
    x = data.normalise(getattr(data, split).X)
    return predict_logits(model, x, batch_size).cpu().numpy()


def model_metrics(
    model: str, data: SessionData, scores: dict[str, np.ndarray], reference: dict, info: dict
) -> dict:
    """The metrics JSON of one model on one session (all accuracies are fractions)."""
    out: dict[str, Any] = {
        "session_id": data.session_id,
        "specimen_id": data.specimen_id,
        "model": model,
    }
    for name, s in scores.items():
        out[name] = classification_metrics(s, getattr(data, name).y, data.n_classes)
    out["chance"] = 1.0 / data.n_classes
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
    """Per test presentation: true and predicted frame (for `dvc plots` confusion matrices)."""
    return pd.DataFrame(
        {
            "presentation_id": data.test.presentation_id,
            "actual": data.frames[data.test.y],
            "predicted": data.frames[test_scores.argmax(axis=1)],
        }
    )


def _model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=sorted(TRAINERS))


if __name__ == "__main__":
    run_stage("train", main, extra=_model_arg)
