"""Stage `train_<model>`: fit one model on one session's split and evaluate it.

Model selection uses the validation split; the test split is scored once, at the end,
with the selected model. Writes the checkpoint, a metrics JSON (accuracy as a fraction,
top-5, balanced accuracy, n per split, chance, ideal-observer ratio) and per-presentation
test predictions for DVC's confusion-matrix plot.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from npdecode.checkpoint import save_checkpoint
from npdecode.cli import run_stage
from npdecode.data import SessionData, load_session
from npdecode.io import read_json, write_csv, write_json
from npdecode.metrics import classification_metrics
from npdecode.models.logreg import LogRegConfig, fit_logreg
from npdecode.params import Params
from npdecode.paths import Layout
from npdecode.runinfo import measure

PARAMS = {"logreg": ("train.logreg",)}
log = logging.getLogger(__name__)


def train_logreg(
    data: SessionData, params: Params, live_dir: Path | None
) -> tuple[nn.Module, dict]:
    p = params.train.logreg
    cfg = LogRegConfig(data.n_units, data.n_bins, data.n_classes, features=p.features)
    model = fit_logreg(data.normalise(data.train.X), data.train.y, cfg, C=p.C, max_iter=p.max_iter)
    return model, {}


# (data, params, DVCLive dir or None) -> (fitted model, extra metrics)
TRAINERS: dict[str, Callable[[SessionData, Params, Path | None], tuple[nn.Module, dict]]] = {
    "logreg": train_logreg,
}


def main(params: Params, model: str, session_id: int, root: Path = Path(".")) -> None:
    """Train `model` on session `session_id`."""
    layout = Layout(root)
    data = load_session(layout.split_dir(session_id), session_id)
    with measure() as cost:
        net, info = TRAINERS[model](data, params, layout.live_dir(model, session_id))
        scores = {name: logits(net, data, name) for name in ("train", "val", "test")}
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


def logits(model: nn.Module, data: SessionData, split: str, batch_size: int = 1024) -> np.ndarray:
    """(P, C) logits of `model` on one split, in eval mode on the CPU."""
    x = data.normalise(getattr(data, split).X)
    model = model.eval().cpu()
    with torch.no_grad():
        out = [
            model(torch.from_numpy(x[i : i + batch_size])).float()
            for i in range(0, len(x), batch_size)
        ]
    return torch.cat(out).numpy() if out else np.zeros((0, data.n_classes), np.float32)


def model_metrics(
    model: str, data: SessionData, scores: dict[str, np.ndarray], reference: dict, info: dict
) -> dict:
    """The metrics JSON of one model on one session (all accuracies are fractions)."""
    out = {"session_id": data.session_id, "specimen_id": data.specimen_id, "model": model}
    for name, s in scores.items():
        out[name] = classification_metrics(s, getattr(data, name).y, data.n_classes)
    out["chance"] = 1.0 / data.n_classes
    out["n_classes"] = data.n_classes
    out["n_units"] = data.n_units
    out["poisson_plugin_accuracy"] = reference["poisson_plugin"]["accuracy"]
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
