"""One decoder shared across sessions: grouping, training, scoring and few-shot transfer.

Sessions are grouped by specimen (`multisession.group: mouse`) or all together (`all`).
A `MultiSessionDecoder` (per-session read-ins, shared core) is trained on the training
splits of a group's sessions, with early stopping on their pooled validation splits.
Transfer: a core trained on the other sessions is frozen and only a new read-in for a
held-out session is fitted on k presentations per image, on exactly the draws of the
single-session few-shot stage (`npdecode.evaluation.fewshot_curve`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from npdecode.decoders import fewshot_budget, fit_options
from npdecode.errors import DataError
from npdecode.evaluation import Draw, fewshot_curve
from npdecode.formats.split import SessionData
from npdecode.models.multisession import MultiSessionDecoder, pack
from npdecode.params import Params
from npdecode.training import fit, predict_logits, seed_everything


def group_sessions(data: dict[int, SessionData], by: str) -> dict[str, list[int]]:
    """Groups of session ids: one per specimen (mouse), or one named `all`."""
    if by == "all":
        return {"all": sorted(data)}
    groups: dict[str, list[int]] = {}
    for sid, d in sorted(data.items()):
        groups.setdefault(
            f"mouse_{d.specimen_id}" if d.specimen_id else f"session_{sid}", []
        ).append(sid)
    return groups


def check_compatible(data: dict[int, SessionData], sids: list[int]) -> None:
    """Sessions of one shared decoder must decode the same images with the same bins."""
    first = data[sids[0]]
    for sid in sids[1:]:
        if not np.array_equal(data[sid].frames, first.frames) or data[sid].n_bins != first.n_bins:
            raise DataError(
                f"sessions {sids[0]} and {sid} differ in their images (frames) or bins: "
                "a shared decoder needs the same classes and bins in every session"
            )


def build_shared(
    data: dict[int, SessionData], sids: list[int], params: Params, seed: int
) -> MultiSessionDecoder:
    """Seed, then build the shared decoder of sessions `sids` from params `multisession`
    and the core's architecture `train.<multisession.core>`."""
    check_compatible(data, sids)
    p = params.multisession
    seed_everything(seed)
    return MultiSessionDecoder(
        p,
        getattr(params.train, p.core),
        session_ids=tuple(sids),
        n_units=tuple(data[s].n_units for s in sids),
        n_bins=data[sids[0]].n_bins,
        n_classes=data[sids[0]].n_classes,
    )


def packed(
    data: dict[int, SessionData], model: MultiSessionDecoder, split: str
) -> tuple[np.ndarray, np.ndarray]:
    """All of the model's sessions' samples of one split, packed: (sum P, T, U_max + 1), labels."""
    u_max = max(model.n_units)
    xs, ys = [], []
    for i, sid in enumerate(model.session_ids):
        part = getattr(data[sid], split)
        xs.append(pack(data[sid].normalise(part.X), i, u_max))
        ys.append(part.y)
    return np.concatenate(xs), np.concatenate(ys)


def train_shared(
    data: dict[int, SessionData], sids: list[int], params: Params, live_dir: Path | None = None
) -> tuple[MultiSessionDecoder, dict[str, Any]]:
    """Train one shared decoder on the sessions `sids` (early stopping on pooled val)."""
    model = build_shared(data, sids, params, params.train.seed)
    opts = fit_options(params.train, params.multisession, "multisession")
    _, info = fit(model, packed(data, model, "train"), packed(data, model, "val"), opts, live_dir)
    return model, info  # fit trains `model` in place


def session_logits(
    model: MultiSessionDecoder, data: SessionData, split: str, batch_size: int
) -> np.ndarray:
    """(P, C) logits of the shared model for one of its sessions."""
    index = model.session_ids.index(data.session_id)
    x = pack(data.normalise(getattr(data, split).X), index, max(model.n_units))
    return predict_logits(model, x, batch_size).cpu().numpy()


def transfer_curve(
    data: dict[int, SessionData], sids: list[int], held_out: int, params: Params
) -> dict[str, Any]:
    """Few-shot accuracy of a new read-in for `held_out` on a core trained on the others."""
    others = [s for s in sids if s != held_out]
    donor, info = train_shared(data, others, params)
    target = data[held_out]
    fs = params.fewshot
    budget = fewshot_budget(params.multisession, fs)

    def fit_and_score(idx: np.ndarray, draw: Draw) -> np.ndarray:
        shot = {held_out: dataclasses.replace(target, train=target.train.subset(idx))}
        model = new_readin(data, held_out, donor, params, draw.train_seed)
        opts = dataclasses.replace(
            fit_options(params.train, budget, "multisession"), seed=draw.train_seed
        )
        fit(model, packed(shot, model, "train"), packed(shot, model, "val"), opts)
        return session_logits(model, target, "test", params.train.batch_size)

    return {
        "session_id": held_out,
        "specimen_id": target.specimen_id,
        "model": "transfer",
        "seed": fs.seed,
        "n_test": len(target.test),
        "core_sessions": others,
        "core_best_val_accuracy": info["best_val_accuracy"],
        "shots": fewshot_curve(
            fit_and_score,
            target.train.y,
            target.test.y,
            target.n_classes,
            fs.shots,
            fs.repeats,
            fs.seed,
            describe=f"transfer to session {held_out}",
        ),
    }


def new_readin(
    data: dict[int, SessionData], sid: int, donor: MultiSessionDecoder, params: Params, seed: int
) -> MultiSessionDecoder:
    """A one-session model for `sid` with a fresh read-in and the donor's frozen core."""
    model = build_shared(data, [sid], params, seed)
    model.core.load_state_dict(donor.core_state())
    model.freeze_core()
    return model
