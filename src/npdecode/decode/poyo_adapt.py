"""Adapt a trained POYO checkpoint to a new session of either data set, the authors' way.

`python -m npdecode.decode.adapt <checkpoint.pt> <split folder> --session-id <id>` calls
`adapt` when the checkpoint holds POYO (models/multisession_poyo/<group>.pt from
`train_multisession_poyo`, a train stage's models/poyo/<id>.pt, or `save_reach`'s): the
new session's units and the session get new embedding rows, trained with every other
weight frozen (npdecode.decode.poyo.adapt_poyo), then `train.poyo.adapt_full_epochs`
epochs of everything; the budget is our read-in's (`multisession.adapt_epochs` at
`adapt_lr`), no validation data. POYO reads spikes, so the project root (`--root`) must
hold the session's raw files as the pipeline fetched them.

- Allen (a `class` checkpoint): the split folder `data/split/<id>`; `--shots K` draws K
  training presentations per image (the few-shot draws' way), else the whole train split.
- Macaque (a `bins` checkpoint): the reaching split folder `data/reach/<name>`; the
  training rows (`--shots` is refused: a minute-based draw belongs to the few-shot stage),
  targets z-scored with that split's statistics, which the written checkpoint stores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from npdecode.decode import poyo_allen, poyo_reach
from npdecode.decode.poyo import adapt_poyo, predict_poyo
from npdecode.decode.poyo_shared import adapt_fit
from npdecode.decode.session import task_of
from npdecode.errors import DataError
from npdecode.formats.checkpoint import write_state
from npdecode.formats.reach_split import load_reach
from npdecode.formats.split import load_session
from npdecode.models.poyo import POYODecoder
from npdecode.params import Params, SessionId
from npdecode.paths import Layout
from npdecode.reaching import decoders


def adapt(
    checkpoint: Path,
    split_dir: Path,
    session_id: SessionId,
    params: Params,
    root: Path,
    out: Path,
    shots: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Adapt the POYO of `checkpoint` to session `session_id`, write it to `out`; returns the
    summary (what it was fitted on, its val and test scores), stored in the checkpoint too."""
    donor, ckpt = poyo_allen.load_poyo(checkpoint)
    fit = adapt_fit(params, seed)
    full = params.train.poyo.adapt_full_epochs
    summary: dict[str, Any] = {
        "session_id": session_id,
        "adapted_from": str(checkpoint),
        "donor_sessions": sorted(donor.units),
        "seed": seed,
        "protocol": "strict",
        "embedding_epochs": fit.epochs,
        "full_epochs": full,
        "lr": fit.lr,
    }
    layout = Layout(root)
    if donor.readout == "class":
        data = load_session(split_dir, session_id)
        frames = ckpt["frames"].numpy()
        if not np.array_equal(data.frames, frames):
            raise DataError(
                f"session {session_id} ({split_dir}) and the POYO {checkpoint} differ in their "
                f"images ({data.n_classes} classes vs {len(frames)}): split the session with "
                "the same params"
            )
        windows = poyo_allen.session_windows(layout, data)
        task = task_of(data)
        idx = (
            np.arange(len(data.train))
            if shots is None
            else task.draw_shots(data.train.y, shots, np.random.default_rng(seed))
        )
        model, _ = adapt_poyo(donor, poyo_allen.subset(windows["train"], idx), fit, full)
        for split in ("val", "test"):
            logits = predict_poyo(model, windows[split], params.train.batch_size)
            summary[split] = task.metrics(logits, getattr(data, split).y)
        summary.update(shots_per_image=shots if shots is not None else "all", n_train=len(idx))
        poyo_allen.save_poyo(out, model, data, provenance=summary)
        return summary
    if shots is not None:
        raise DataError("--shots draws presentations per image: Allen sessions only")
    name = str(session_id)
    reach = load_reach(split_dir, name)
    spikes = poyo_reach.read_spikes(layout, reach, params.reach.units)
    m, sd = reach.target_mean, reach.target_sd
    train = poyo_reach.windows(reach, spikes, reach.rows["train"], m, sd)
    model, _ = adapt_poyo(donor, train, fit, full)
    task = decoders.task_of(reach)
    for split in ("val", "test"):
        pred = poyo_reach.predict_split(model, reach, spikes, split)
        summary[split] = task.metrics(pred, reach.y(split).astype(float))
    summary["n_train"] = int(len(reach.rows["train"]))
    save_reach(out, model, m, sd, provenance=summary)
    return summary


def save_reach(
    path: Path,
    model: POYODecoder,
    target_mean: np.ndarray,
    target_sd: np.ndarray,
    provenance: dict[str, Any] | None = None,
) -> None:
    """A POYO checkpoint of a `bins` readout with the target statistics its outputs undo."""
    state: dict[str, Any] = {
        "model": "poyo",
        "spec": model.spec(),
        "tensors": {k: v.detach().cpu() for k, v in model.tensors().items()},
        "target_mean": torch.from_numpy(np.asarray(target_mean, np.float64)),
        "target_sd": torch.from_numpy(np.asarray(target_sd, np.float64)),
    }
    if provenance is not None:
        state["provenance"] = provenance
    write_state(path, state)
