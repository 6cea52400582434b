"""Stage `fewshot_<model>`: accuracy when training on only k presentations per image.

For each k in `fewshot.shots` and each of `fewshot.repeats` draws, k presentations per
image are sampled from the training split (seeded by `fewshot.seed`, k and the repeat),
the model is trained on them as in its train stage (validation split for early stopping,
within the few-shot epoch budget), and scored on the full test split. Results are per
session, never per mouse.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import numpy as np

from npdecode.cli import run_stage
from npdecode.decoders import (
    MODELS,
    TRAIN_PARAMS,
    eval_batch,
    fewshot_train,
    split_logits,
    train_model,
)
from npdecode.evaluation import Draw, fewshot_curve
from npdecode.formats.files import write_json
from npdecode.formats.scores import fewshot_scores, write_scores
from npdecode.formats.split import SessionData, load_session
from npdecode.params import Params
from npdecode.paths import Layout

# a model's few-shot run reads its training params as well
PARAMS = {model: ("fewshot", *keys) for model, keys in TRAIN_PARAMS.items()}
log = logging.getLogger(__name__)


def run_fewshot(model: str, data: SessionData, params: Params) -> dict:
    """Train `model` on every draw and score it on the test split; return the results."""

    def fit_and_score(idx: np.ndarray, draw: Draw) -> np.ndarray:
        subset = dataclasses.replace(data, train=data.train.subset(idx))
        train = fewshot_train(params.train, model, params.fewshot, draw.train_seed)
        net, _ = train_model(model, subset, train)  # no learning curves per draw
        return split_logits(net, data, "test", eval_batch(model, params.train))

    fs = params.fewshot
    return {
        "session_id": data.session_id,
        "specimen_id": data.specimen_id,
        "model": model,
        "seed": fs.seed,
        "n_test": len(data.test),
        "shots": fewshot_curve(
            fit_and_score,
            data.train.y,
            data.test.y,
            data.n_classes,
            fs.shots,
            fs.repeats,
            fs.seed,
            describe=f"{model} session {data.session_id}",
        ),
    }


def main(params: Params, model: str, session_id: int, root: Path = Path(".")) -> None:
    """Few-shot curve of `model` on session `session_id`."""
    layout = Layout(root)
    data = load_session(layout.split_dir(session_id), session_id)
    result = run_fewshot(model, data, params)
    result.update(chance=1.0 / data.n_classes)
    write_json(layout.fewshot(model, session_id), result)
    scores = fewshot_scores(model, session_id, result)
    write_scores(layout.scores(f"fewshot_{model}_{session_id}"), scores)


def _model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=MODELS)


if __name__ == "__main__":
    run_stage("fewshot", main, extra=_model_arg)
