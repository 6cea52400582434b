"""One decoder shared across sessions: grouping, training, scoring and few-shot transfer.

Sessions are grouped by specimen (`multisession.group: mouse`) or all together (`all`).
A `MultiSessionDecoder` (per-session read-ins, shared core) is trained on the training
splits of a group's sessions, with early stopping on their pooled validation splits.
Transfer: a core trained on the other sessions is frozen and only a new read-in for a
held-out session is fitted on k presentations per image, on exactly the draws of the
single-session few-shot stage (`npdecode.evaluation.fewshot_curve`) and under the same
protocol (`fewshot.protocol`, `npdecode.decoders.shot_view` / `fit_shot_learners`): under
strict, the read-in's input z-scoring comes from the shots and it trains a fixed budget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from npdecode.decoders import fit_options
from npdecode.errors import DataError
from npdecode.evaluation import Draw, fewshot_curve
from npdecode.fewshot import fit_shot_learners, protocol_detail, shot_view
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
    opts = fit_options(params.train, params.multisession)
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
) -> tuple[dict[str, Any], dict[int, np.ndarray]]:
    """Few-shot accuracy of a new read-in for `held_out` on a core trained on the others.

    Returns the result JSON and {k: (repeats, P_test) predicted class} of every draw.
    """
    others = [s for s in sids if s != held_out]
    donor, info = train_shared(data, others, params)
    target = data[held_out]
    fs = params.fewshot

    def fit_group(group: list[tuple[np.ndarray, Draw]]) -> list[np.ndarray]:
        views = [shot_view(target, idx, fs.protocol) for idx, _ in group]
        seeds = [d.train_seed for _, d in group]
        models = [new_readin(data, held_out, donor, params, seed) for seed in seeds]
        fit_shot_learners(models, views, seeds, packed_one, params.multisession, params.train, fs)
        return [
            session_logits(m, v, "test", params.train.batch_size)
            for m, v in zip(models, views, strict=True)
        ]

    shots, predicted = fewshot_curve(
        fit_group,
        target.train.y,
        target.test.y,
        target.n_classes,
        fs.shots,
        fs.repeats,
        fs.seed,
        describe=f"transfer to session {held_out}",
        frames=target.frames,
    )
    result = {
        "session_id": held_out,
        "specimen_id": target.specimen_id,
        "model": "transfer",
        "protocol": fs.protocol,
        "protocol_detail": protocol_detail(
            "transfer", fs, params.train, params.multisession, target.n_classes
        ),
        "seed": fs.seed,
        "n_test": len(target.test),
        "core_sessions": others,
        "core_best_val_accuracy": info["best_val_accuracy"],
        "shots": shots,
    }
    return result, predicted


def packed_one(view: SessionData, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A split of a one-session model's view, z-scored with the view's statistics and
    packed as its only session (index 0)."""
    part = getattr(view, split)
    return pack(view.normalise(part.X), 0, view.n_units), part.y


def new_readin(
    data: dict[int, SessionData], sid: int, donor: MultiSessionDecoder, params: Params, seed: int
) -> MultiSessionDecoder:
    """A one-session model for `sid` with a fresh read-in and the donor's frozen core."""
    model = build_shared(data, [sid], params, seed)
    model.core.load_state_dict(donor.core_state())
    model.freeze_core()
    return model
