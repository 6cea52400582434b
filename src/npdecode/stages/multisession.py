"""Stage `train_multisession`: one decoder per mouse (or for all sessions), and transfer.

For each group of sessions (`multisession.group`), a shared decoder is trained and scored
on each session's own test split, in the single-session metrics schema:
`metrics/multisession/<id>.json`. Transfer (`multisession.transfer`, groups of two or
more sessions): each session in turn is held out, a core is trained on the others and
frozen, and only a new read-in is fitted on the few-shot stage's draws; results go to
`metrics/fewshot/transfer/<id>.json`, beside the from-scratch few-shot curves.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from npdecode.cli import run_stage
from npdecode.decoders import SHARED_TRAIN_PARAMS, model_metrics, predictions_table
from npdecode.formats.checkpoint import save_shared
from npdecode.formats.files import atomic_path, read_json, write_csv, write_json
from npdecode.formats.scores import fewshot_scores, model_scores, write_scores
from npdecode.formats.split import SessionData, load_session
from npdecode.models.multisession import MultiSessionDecoder
from npdecode.multisession import group_sessions, session_logits, train_shared, transfer_curve
from npdecode.params import Params
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
    data = {sid: load_session(layout.split_dir(sid), sid) for sid in params.sessions}
    models, metrics, predictions, transfer = {}, {}, {}, {}
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
        for sid in sids:
            if not params.multisession.transfer or len(sids) < 2:
                why = (
                    "multisession.transfer is off"
                    if not params.multisession.transfer
                    else (f"{name} has no other session to train a core on")
                )
                log.info("no transfer to session %d: %s", sid, why)
                transfer[sid] = {
                    "session_id": sid,
                    "model": "transfer",
                    "skipped": why,
                    "shots": {},
                }
                continue
            transfer[sid] = transfer_curve(data, sids, sid, params)
            transfer[sid].update(chance=1.0 / data[sid].n_classes)
    outputs: dict[Path, dict[str, Any]] = {
        layout.root / "models" / MODEL: {f"{n}.pt": m for n, m in models.items()},
        layout.root / "metrics" / MODEL: {f"{s}.json": m for s, m in metrics.items()},
        layout.predictions(MODEL, 0).parent: {f"{s}.csv": p for s, p in predictions.items()},
        layout.root / "metrics" / "fewshot" / "transfer": {
            f"{s}.json": t for s, t in transfer.items()
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


def _write(path: Path, obj: Any, data: dict[int, SessionData]) -> None:
    if isinstance(obj, MultiSessionDecoder):
        save_shared(path, obj, data)
    elif path.suffix == ".csv":
        write_csv(obj, path)
    else:
        write_json(path, obj)


if __name__ == "__main__":
    run_stage("multisession", main, per_session=False, dvc_stage="train_multisession")
