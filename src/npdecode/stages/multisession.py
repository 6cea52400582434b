"""Stage `train_multisession`: one decoder shared across mice, and transfer to new mice.

For each group of sessions (`multisession.group`: `all`, the default, or one per mouse) a
shared decoder is trained, saved (`models/multisession/<group>.pt`) and scored on each
session's own test split, in the single-session metrics schema:
`metrics/multisession/<id>.json`. Transfer (`multisession.transfer`): the group's mice are
split into `multisession.folds` folds; a core trained on the other folds is frozen and
each held-out session gets only a new read-in, fitted on the few-shot stage's draws;
results go to `metrics/fewshot/transfer/<id>.json`, beside the from-scratch few-shot
curves. Sessions are read lazily: memory is bounded by a batch and the model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from npdecode.cli import run_stage
from npdecode.decode.session import SHARED_TRAIN_PARAMS, model_metrics, predictions_table
from npdecode.decode.shared import group_sessions, session_logits, train_shared
from npdecode.decode.transfer import skipped_transfer, transfer_by_folds
from npdecode.formats.checkpoint import save_shared
from npdecode.formats.files import atomic_path, read_json, write_csv, write_json
from npdecode.formats.predictions import fewshot_predictions_table
from npdecode.formats.scores import fewshot_scores, model_scores, write_scores
from npdecode.formats.split import SessionData, load_session
from npdecode.models.multisession import MultiSessionDecoder
from npdecode.params import Params, SessionId
from npdecode.paths import Layout

PARAMS = (
    "sessions",
    "multisession",
    "fewshot",
    *SHARED_TRAIN_PARAMS,
    "train.lstm",
    "train.transformer",
)
MODEL = "multisession"
log = logging.getLogger(__name__)


def main(params: Params, root: Path = Path(".")) -> None:
    """Train the shared decoders and write per-session metrics and transfer curves."""
    layout = Layout(root)
    data = {sid: load_session(layout.split_dir(sid), sid, lazy=True) for sid in params.sessions}
    models, metrics, predictions = {}, {}, {}
    transfer: dict[SessionId, dict[str, Any]] = {}
    transfer_predictions: dict[SessionId, pd.DataFrame] = {}
    predicted_all: dict[SessionId, dict[int, np.ndarray]] = {}
    for name, sids in group_sessions(data, params.multisession.group).items():
        models[name], info = train_shared(data, sids, params)
        for sid in sids:
            scores = {
                split: session_logits(models[name], data[sid], split, params.train.batch_size)
                for split in ("train", "val", "test")
            }
            m = model_metrics(MODEL, data[sid], scores, read_json(layout.reference(sid)), info)
            metrics[sid] = {**m, "group": name, "group_sessions": sids}
            predictions[sid] = predictions_table(data[sid], scores["test"])
            log.info("%s, session %d: test accuracy %.3f", name, sid, m["test"]["accuracy"])
        if not params.multisession.transfer:
            for sid in sids:
                transfer[sid] = skipped_transfer(data[sid], "multisession.transfer is off", params)
            continue
        curves, predicted = transfer_by_folds(data, sids, params)
        predicted_all.update(predicted)
        for sid, result in curves.items():
            transfer[sid] = {**result, "chance": 1.0 / data[sid].n_classes}
    # every transfer draw's test predictions (paired tests); a skipped session gets the
    # columns only, so the folder is never empty (git keeps no empty folder: a clone would
    # see the output deleted)
    for sid, result in transfer.items():
        seeds = {int(k): [r["seed"] for r in v["repeats"]] for k, v in result["shots"].items()}
        test = data[sid].test
        transfer_predictions[sid] = fewshot_predictions_table(
            predicted_all.get(sid, {}), seeds, test.presentation_id, test.y, data[sid].frames
        )
    outputs: dict[Path, dict[str, Any]] = {
        layout.root / "models" / MODEL: {f"{n}.pt": m for n, m in models.items()},
        layout.root / "metrics" / MODEL: {f"{s}.json": m for s, m in metrics.items()},
        layout.predictions(MODEL, 0).parent: {f"{s}.csv": p for s, p in predictions.items()},
        layout.root / "metrics" / "fewshot" / "transfer": {
            f"{s}.json": t for s, t in transfer.items()
        },
        layout.fewshot_predictions("transfer", 0).parent: {
            f"{s}.csv": p for s, p in transfer_predictions.items()
        },
    }
    for folder, files in outputs.items():  # each folder whole, or not at all
        with atomic_path(folder) as tmp:
            tmp.mkdir()
            for fname, obj in files.items():
                _write(tmp / fname, obj, data)
    write_scores(
        layout.scores(MODEL),
        *(model_scores(MODEL, s, m) for s, m in metrics.items()),
        *(fewshot_scores("transfer", s, t) for s, t in transfer.items()),
    )


def _write(path: Path, obj: Any, data: dict[SessionId, SessionData]) -> None:
    if isinstance(obj, MultiSessionDecoder):
        save_shared(path, obj.cpu(), data)
    elif path.suffix == ".csv":
        write_csv(obj, path)
    else:
        write_json(path, obj)


if __name__ == "__main__":
    run_stage("multisession", main, per_session=False, dvc_stage="train_multisession")
