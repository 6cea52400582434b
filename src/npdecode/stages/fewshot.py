"""Stage `fewshot_<model>`: accuracy when training on only k presentations per image.

For each k in `fewshot.shots` and each of `fewshot.repeats` draws, k presentations per
image are sampled from the training split (seeded by `fewshot.seed`, k and the repeat),
a learner is fitted on them under `fewshot.protocol` (strict by default: it sees its
shots and nothing else; see `npdecode.decode.fewshot`), and scored on the full test split.
Writes the curve (mean ± sd over draws, the interval of the mean, every draw with its
interval) and every draw's test predictions, for paired comparisons in the report.
Results are per session, never per mouse.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from npdecode.cli import run_stage
from npdecode.decode.fewshot import session_curve
from npdecode.decode.session import MODELS, TRAIN_PARAMS
from npdecode.formats.files import write_json
from npdecode.formats.predictions import fewshot_predictions_table, write_predictions
from npdecode.formats.scores import fewshot_scores, write_scores
from npdecode.formats.split import load_session
from npdecode.params import Params, SessionId
from npdecode.paths import Layout

# a model's few-shot run reads its training params as well; strict ST-GAT rebuilds its
# unit graph from the shots with the split stage's graph settings
PARAMS = {
    model: ("fewshot", *keys, *(("split.graph",) if model == "stgat" else ()))
    for model, keys in TRAIN_PARAMS.items()
}
log = logging.getLogger(__name__)


def main(params: Params, model: str, session_id: SessionId, root: Path = Path(".")) -> None:
    """Few-shot curve of `model` on session `session_id`."""
    layout = Layout(root)
    data = load_session(layout.split_dir(session_id), session_id)
    graph = params.split.graph if model == "stgat" else None
    result, predicted, seeds = session_curve(model, data, params.train, params.fewshot, graph)
    result.update(chance=1.0 / data.n_classes)
    table = fewshot_predictions_table(
        predicted, seeds, data.test.presentation_id, data.test.y, data.frames
    )
    write_predictions(table, layout.fewshot_predictions(model, session_id))
    write_json(layout.fewshot(model, session_id), result)
    scores = fewshot_scores(model, session_id, result)
    write_scores(layout.scores(f"fewshot_{model}_{session_id}"), scores)


def _model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=MODELS)


if __name__ == "__main__":
    run_stage("fewshot", main, extra=_model_arg)
