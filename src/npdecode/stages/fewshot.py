"""Stage `fewshot_<model>`: accuracy when training on only k presentations per image.

For each k in `fewshot.shots` and each of `fewshot.repeats` draws, k presentations per
image are sampled from the training split (seeded by `fewshot.seed`, k and the repeat),
a learner is fitted on them under `fewshot.protocol` (strict by default: it sees its
shots and nothing else; see `npdecode.decode.fewshot`), and scored on the full test split.
Writes the curve (mean ± sd over draws, the interval of the mean, every draw with its
interval) and every draw's test predictions, for paired comparisons in the report.
Results are per session, never per mouse.

A session of params `reach_sessions` (dvc.yaml's `reach_fewshot`): k minutes of labelled
bins (`reach.fewshot.minutes`) drawn from the training blocks as contiguous stretches that
never cross a block edge or a still period (RegressionTask.draw_shots), strict protocol
(normalisation from the shots, a fixed budget of `reach.fewshot.steps` steps, no
validation data), test R² mean ± interval over draws.
"""

from __future__ import annotations

import argparse
import functools
import logging
from pathlib import Path

import numpy as np
import torch

from npdecode.cli import run_stage
from npdecode.decode.fewshot import Draw, fewshot_curve, pooled, session_curve
from npdecode.decode.session import MODELS, SHARED_TRAIN_PARAMS, TRAIN_PARAMS
from npdecode.formats.files import write_json
from npdecode.formats.predictions import fewshot_predictions_table, write_predictions
from npdecode.formats.reach_split import load_reach
from npdecode.formats.scores import fewshot_scores, reach_fewshot_scores, write_scores
from npdecode.formats.split import load_session
from npdecode.params import REACH_MODELS, Params, SessionId
from npdecode.paths import Layout
from npdecode.reaching import decoders
from npdecode.threads import configure_workers

# a model's few-shot run reads its training params as well; strict ST-GAT rebuilds its
# unit graph from the shots with the split stage's graph settings
PARAMS = {
    model: ("fewshot", *keys, *(("split.graph",) if model == "stgat" else ()))
    for model, keys in TRAIN_PARAMS.items()
}
# POYO (optional) runs in the same stage group as ST-GAT (fewshot_stgat), which declares
# split.graph for every model it runs
PARAMS["poyo"] = ("fewshot", *SHARED_TRAIN_PARAMS, "train.poyo", "split.graph")
# one params list for every model of dvc.yaml's reach_fewshot matrix: ST-GAT's graph
# settings (split.graph, the graph rebuilt from each draw's shots) are in it for all
REACH_PARAMS = {
    model: ("reach.fewshot", "train.device", "train.seed", "train.batch_size", "train.amp",
            f"train.{model}", "split.graph")
    for model in REACH_MODELS
}  # fmt: skip
log = logging.getLogger(__name__)


def main(params: Params, model: str, session_id: SessionId, root: Path = Path(".")) -> None:
    """Few-shot curve of `model` on session `session_id`."""
    layout = Layout(root)
    if isinstance(session_id, str) and session_id in params.reach_sessions:
        reach_fewshot(params, model, session_id, layout)
        return
    data = load_session(layout.split_dir(session_id), session_id)
    graph = params.split.graph if model == "stgat" else None
    if model == "poyo":  # optional (the `poyo` extra): spike tokens, the same draws
        from npdecode.decode import poyo_allen, poyo_fewshot

        windows = poyo_allen.session_windows(layout, data)
        result, predicted, seeds = poyo_fewshot.session_curve(
            data, windows, params.train, params.fewshot
        )
    else:
        threads = torch.get_num_threads()  # the stage's, set by run_stage (params `threads`)
        workers, why = configure_workers(params.workers, threads)
        if pooled(model, params.train, params.fewshot, workers):
            log.info("worker processes for CPU draws: %d (%s)", workers, why)
        result, predicted, seeds = session_curve(
            model, data, params.train, params.fewshot, graph, workers, threads
        )
    result.update(chance=1.0 / data.n_classes)
    table = fewshot_predictions_table(
        predicted, seeds, data.test.presentation_id, data.test.y, data.frames
    )
    write_predictions(table, layout.fewshot_predictions(model, session_id))
    write_json(layout.fewshot(model, session_id), result)
    scores = fewshot_scores(model, session_id, result)
    write_scores(layout.scores(f"fewshot_{model}_{session_id}"), scores)


def reach_fewshot(params: Params, model: str, name: str, layout: Layout) -> None:
    """Few-shot curve (test R² per k minutes) of `model` on reaching session `name`."""
    data = load_reach(layout.reach_split_dir(name), name)
    fs = params.reach.fewshot
    task = decoders.task_of(data)
    per_min = 60.0 / data.width_s
    graph = params.split.graph if model == "stgat" else None
    shots = tuple(max(1, int(round(m * per_min))) for m in fs.minutes)

    fit_one = functools.partial(decoders.fit_shots, model, data, graph=graph)
    if model == "poyo":  # optional (the `poyo` extra): spike tokens of each window
        from npdecode.decode import poyo_reach

        spikes = poyo_reach.read_spikes(layout, data, params.reach.units)
        fit_one = functools.partial(poyo_reach.fit_shots, data, spikes)

    def fit_group(group: list[tuple[np.ndarray, Draw]]) -> list[np.ndarray]:
        return [fit_one(params.train, idx, fs.steps, d.train_seed) for idx, d in group]

    curve, _ = fewshot_curve(
        fit_group,
        task,
        data.y("train"),
        data.y("test").astype(float),
        shots,
        fs.repeats,
        fs.seed,
        describe=f"{model} session {name}",
    )
    by_minutes = {f"{m:g}": curve[str(k)] for m, k in zip(fs.minutes, shots, strict=True)}
    result = {
        "session_id": name,
        "model": model,
        "protocol": "strict",
        "steps": fs.steps,
        "seed": fs.seed,
        "bins_per_minute": per_min,
        "n_test": int(data.rows["test"].size),
        "minutes": by_minutes,
    }
    write_json(layout.reach_fewshot(model, name), result)
    scores = reach_fewshot_scores(model, name, by_minutes)
    write_scores(layout.scores(f"reach_fewshot_{model}_{name}"), scores)


def _model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=(*MODELS, "poyo"))


if __name__ == "__main__":
    run_stage("fewshot", main, extra=_model_arg)
