"""Stage `train_<model>`: fit one model on one session's split and evaluate it.

Model selection uses the validation split; the test split is scored once, at the end,
with the selected model. Writes the checkpoint, a metrics JSON (accuracy as a fraction,
top-5, balanced accuracy, n per split, chance, ideal-observer ratio) and per-presentation
test predictions for DVC's confusion-matrix plot; the deep models also write DVCLive
learning curves.

A session of params `reach_sessions` (dvc.yaml's `reach_train_<model>`): the model maps a
history window (B, h, U) to the 2-D target through a regression head (RegressionTask:
MSE, early stopping on validation R²), capped at `reach.max_epochs`; test R² per axis and
overall with 95 % intervals, and paired differences against the reference decoders on
the same test blocks; the checkpoint (`models/reach/<model>/<name>.pt`,
`npdecode.formats.reach_checkpoint`) is what `npdecode.load_model` reads.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from npdecode.cli import run_stage
from npdecode.decode.session import (
    MODELS,
    SHARED_TRAIN_PARAMS,
    TRAIN_PARAMS,
    eval_batch,
    model_metrics,
    predictions_table,
    split_logits,
    train_model,
)
from npdecode.formats.checkpoint import save_checkpoint
from npdecode.formats.files import read_csv, read_json, write_csv, write_json
from npdecode.formats.reach_checkpoint import save_reach_checkpoint
from npdecode.formats.reach_split import load_reach
from npdecode.formats.scores import model_scores, reach_scores, write_scores
from npdecode.formats.split import SessionData, load_session
from npdecode.params import REACH_MODELS, Params, SessionId
from npdecode.paths import Layout
from npdecode.reaching import decoders

PARAMS = {**TRAIN_PARAMS, "poyo": (*SHARED_TRAIN_PARAMS, "train.poyo")}
# dvc.yaml's reach_train declares one params list for every model of its matrix: ST-GAT's
# unit graph settings (split.graph) are in it for all of them
REACH_PARAMS = {
    model: ("reach.max_epochs", "train.device", "train.seed", "train.batch_size", "train.amp",
            f"train.{model}", "split.graph")
    for model in REACH_MODELS
}  # fmt: skip
log = logging.getLogger(__name__)


def main(params: Params, model: str, session_id: SessionId, root: Path = Path(".")) -> None:
    """Train `model` on session `session_id`."""
    layout = Layout(root)
    if isinstance(session_id, str) and session_id in params.reach_sessions:
        reach_train(params, model, session_id, layout)
        return
    data = load_session(layout.split_dir(session_id), session_id)
    if model == "poyo":
        poyo_train(params, data, layout)
        return
    batch = eval_batch(model, params.train)
    net, info = train_model(model, data, params.train, layout.live_dir(model, session_id))
    scores = {s: split_logits(net, data, s, batch) for s in ("train", "val", "test")}
    reference = read_json(layout.reference(session_id))
    metrics = model_metrics(model, data, scores, reference, info)
    save_checkpoint(layout.model(model, session_id), model, net, data)
    write_json(layout.metrics(model, session_id), metrics)
    scores_file = layout.scores(f"{model}_{session_id}")
    write_scores(scores_file, model_scores(model, session_id, metrics))
    write_csv(predictions_table(data, scores["test"]), layout.predictions(model, session_id))
    log.info(
        "%s on session %d: test accuracy %.3f (val %.3f, chance %.4f)",
        model,
        session_id,
        metrics["test"]["accuracy"],
        metrics["val"]["accuracy"],
        metrics["chance"],
    )


def poyo_train(params: Params, data: SessionData, layout: Layout) -> None:
    """POYO (optional: the `poyo` extra) on an Allen session: spike tokens of the split's
    presentations (npdecode.decode.poyo_allen), the same metrics, scores and predictions."""
    from npdecode.decode import poyo_allen

    sid = data.session_id
    windows = poyo_allen.session_windows(layout, data)
    net, info = poyo_allen.train_split(windows, data.n_classes, params.train)
    batch = params.train.batch_size
    scores = {s: poyo_allen.predict_poyo(net, windows[s], batch) for s in ("train", "val", "test")}
    metrics = model_metrics("poyo", data, scores, read_json(layout.reference(sid)), info)
    poyo_allen.save_poyo(layout.model("poyo", sid), net, data)
    poyo_allen.write_curves(layout.live_dir("poyo", sid), info)
    write_json(layout.metrics("poyo", sid), metrics)
    write_scores(layout.scores(f"poyo_{sid}"), model_scores("poyo", sid, metrics))
    write_csv(predictions_table(data, scores["test"]), layout.predictions("poyo", sid))
    log.info("poyo on session %s: test accuracy %.3f (val %.3f, %d epochs, %.0f CPU-s)", sid,
             metrics["test"]["accuracy"], metrics["val"]["accuracy"], info["epochs"],
             info["fit_cpu_s"])  # fmt: skip


def reach_train(params: Params, model: str, name: str, layout: Layout) -> None:
    """Train deep `model` on reaching session `name`; score it against the references."""
    data = load_reach(layout.reach_split_dir(name), name)
    if model == "poyo":  # optional (the `poyo` extra): spike tokens of each window
        from npdecode.decode import poyo_adapt, poyo_reach

        spikes = poyo_reach.read_spikes(layout, data, params.reach.units)
        poyo, info = poyo_reach.train_reach(data, spikes, params.train, params.reach.max_epochs)
        pred = {s: poyo_reach.predict_split(poyo, data, spikes, s) for s in ("val", "test")}
        poyo_adapt.save_reach(
            layout.reach_model(model, name), poyo, data.target_mean, data.target_sd
        )
    else:
        graph = params.split.graph if model == "stgat" else None
        net, info = decoders.fit_deep(
            model, data, params.train, params.reach.max_epochs, None, graph
        )
        pred = {s: decoders.predict(net, data, s) for s in ("val", "test")}
        save_reach_checkpoint(layout.reach_model(model, name), model, net, data)
    task = decoders.task_of(data)
    ref = read_csv(layout.reach_predictions("reference", name))
    others = {c[:-2] for c in ref.columns if c.endswith("_x") and c != "true_x"}
    test_y = data.y("test").astype(float)
    paired = [
        {"session": name, "a": model, "b": o,
         **task.paired(pred["test"], ref[[f"{o}_x", f"{o}_y"]].to_numpy(), test_y)}
        for o in sorted(others)
    ]  # fmt: skip
    test = task.metrics(pred["test"], test_y)
    metrics: dict[str, Any] = {
        "session_id": name,
        "model": model,
        "target": data.target_name,
        "val": task.metrics(pred["val"], data.y("val").astype(float)),
        "test": test,
        "paired": paired,
        "fit": info,
    }
    write_json(layout.reach_metrics(model, name), metrics)
    write_scores(layout.scores(f"reach_{model}_{name}"), reach_scores(name, {model: test}))
    write_csv(
        decoders.prediction_table(data, {model: pred["test"]}),
        layout.reach_predictions(model, name),
    )
    log.info("%s on session %s: test R² %.3f [%.3f, %.3f]", model, name, test["r2"],
             test["r2_lo"], test["r2_hi"])  # fmt: skip


def _model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=(*MODELS, "poyo"))


if __name__ == "__main__":
    run_stage("train", main, extra=_model_arg)
