"""Stage `train_<model>`: fit one model on one session's split and evaluate it.

Model selection uses the validation split; the test split is scored once, at the end,
with the selected model. Writes the checkpoint, a metrics JSON (accuracy as a fraction,
top-5, balanced accuracy, n per split, chance, ideal-observer ratio) and per-presentation
test predictions for DVC's confusion-matrix plot; the deep models also write DVCLive
learning curves.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from npdecode.cli import run_stage
from npdecode.decode.session import (
    MODELS,
    TRAIN_PARAMS,
    eval_batch,
    model_metrics,
    predictions_table,
    split_logits,
    train_model,
)
from npdecode.formats.checkpoint import save_checkpoint
from npdecode.formats.files import read_json, write_csv, write_json
from npdecode.formats.scores import model_scores, write_scores
from npdecode.formats.split import load_session
from npdecode.params import Params, SessionId
from npdecode.paths import Layout

PARAMS = TRAIN_PARAMS
log = logging.getLogger(__name__)


def main(params: Params, model: str, session_id: SessionId, root: Path = Path(".")) -> None:
    """Train `model` on session `session_id`."""
    layout = Layout(root)
    data = load_session(layout.split_dir(session_id), session_id)
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


def _model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=MODELS)


if __name__ == "__main__":
    run_stage("train", main, extra=_model_arg)
