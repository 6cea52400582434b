"""Stage `train_multisession_poyo`: POYO across sessions, beside our shared decoder.

Optional: dvc.yaml runs it only when params `optional_shared` lists `poyo`. Like
`train_multisession`, one POYO per group of sessions (`multisession.group`) is trained
on their training splits and scored on each session's test split, and transfer holds out
the same mice in the same folds and adapts a POYO trained on the others the authors'
way on the same few-shot draws (npdecode.decode.poyo_shared). Writes the shared
checkpoints (models/multisession_poyo/<group>.pt), per-session metrics and predictions
(model `multisession_poyo`: results/summary.csv), and the transfer curves with every
draw's predictions (few-shot learner `transfer_poyo`: results/fewshot.csv, and paired
with `transfer` and every scratch learner in results/comparisons.csv).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from npdecode.cli import run_stage
from npdecode.decode import poyo_allen, poyo_shared
from npdecode.decode.poyo import predict_poyo
from npdecode.decode.session import SHARED_TRAIN_PARAMS, model_metrics, predictions_table
from npdecode.decode.shared import group_sessions
from npdecode.formats.files import atomic_path, read_json, write_csv, write_json
from npdecode.formats.predictions import fewshot_predictions_table
from npdecode.formats.scores import fewshot_scores, model_scores, write_scores
from npdecode.formats.split import load_session
from npdecode.params import Params
from npdecode.paths import Layout

PARAMS = (
    "sessions",
    "multisession.group",
    "multisession.folds",
    "multisession.fold_seed",
    "multisession.adapt_epochs",
    "multisession.adapt_lr",
    "fewshot",
    *SHARED_TRAIN_PARAMS,
    "train.poyo",
)
MODEL, TRANSFER = "multisession_poyo", "transfer_poyo"
log = logging.getLogger(__name__)


def main(params: Params, root: Path = Path(".")) -> None:
    """Train the shared POYOs, transfer by folds, write every output folder whole."""
    layout = Layout(root)
    data = {sid: load_session(layout.split_dir(sid), sid) for sid in params.sessions}
    windows = {sid: poyo_allen.session_windows(layout, d) for sid, d in data.items()}
    batch = params.train.batch_size
    files: dict[Path, dict[str, Any]] = {
        layout.root / "models" / MODEL: {},
        layout.root / "metrics" / MODEL: {},
        layout.predictions(MODEL, 0).parent: {},
        layout.fewshot(TRANSFER, 0).parent: {},
        layout.fewshot_predictions(TRANSFER, 0).parent: {},
    }
    scores = []
    for name, sids in group_sessions(data, params.multisession.group).items():
        n_classes = data[sids[0]].n_classes
        model, info = poyo_shared.train_shared(windows, sids, n_classes, params)
        files[layout.root / "models" / MODEL][f"{name}.pt"] = (model, data[sids[0]])
        for sid in sids:
            logits = {
                s: predict_poyo(model, windows[sid][s], batch) for s in ("train", "val", "test")
            }
            m = model_metrics(MODEL, data[sid], logits, read_json(layout.reference(sid)), info)
            m.update(group=name, group_sessions=sids)
            files[layout.root / "metrics" / MODEL][f"{sid}.json"] = m
            table = predictions_table(data[sid], logits["test"])
            files[layout.predictions(MODEL, 0).parent][f"{sid}.csv"] = table
            scores.append(model_scores(MODEL, sid, m))
        full = params.train.poyo.adapt_full_epochs
        for sid, result in poyo_shared.transfer_by_folds(data, windows, sids, params, full).items():
            predicted: dict[int, np.ndarray] = result.pop("predicted")
            result["chance"] = 1.0 / data[sid].n_classes
            seeds = {int(k): [r["seed"] for r in v["repeats"]] for k, v in result["shots"].items()}
            test = data[sid].test
            table = fewshot_predictions_table(
                predicted, seeds, test.presentation_id, test.y, data[sid].frames
            )
            files[layout.fewshot(TRANSFER, 0).parent][f"{sid}.json"] = result
            files[layout.fewshot_predictions(TRANSFER, 0).parent][f"{sid}.csv"] = table
            scores.append(fewshot_scores(TRANSFER, sid, result))
    for folder, content in files.items():  # each folder whole, or not at all
        with atomic_path(folder) as tmp:
            tmp.mkdir()
            (tmp / ".keep").write_text("")  # git keeps no empty folder (a single mouse)
            for fname, obj in content.items():
                path = tmp / fname
                if path.suffix == ".pt":
                    poyo_allen.save_poyo(path, *obj)
                elif path.suffix == ".csv":
                    write_csv(obj, path)
                else:
                    write_json(path, obj)
    write_scores(layout.scores(MODEL), *scores)


if __name__ == "__main__":
    run_stage("poyo_multisession", main, per_session=False, dvc_stage="train_multisession_poyo")
