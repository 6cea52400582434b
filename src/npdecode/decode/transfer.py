"""Transfer of the shared decoder to new mice, by folds.

The group's mice (its sessions, with `multisession.group: mouse`) are split into
`multisession.folds` seeded folds; for each fold a core is trained on the other folds'
sessions (`npdecode.decode.shared.train_shared`) and frozen, and each held-out session gets
only a new read-in, fitted on the shots of the few-shot stage's loop, on its draws and under
its protocol (`fewshot.protocol`, `npdecode.decode.fewshot`; `fit_readins`), and scored on
its test split. `folds` core trainings in all.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from npdecode.decode.fewshot import Draw, session_fewshot_curve, shot_view
from npdecode.decode.shared import (
    adapted_logits,
    fit_readins,
    mouse_of,
    readin_detail,
    train_shared,
)
from npdecode.errors import ParamsError
from npdecode.formats.split import SessionData
from npdecode.models.multisession import MultiSessionDecoder
from npdecode.params import Params, SessionId

log = logging.getLogger(__name__)

# --- folds -------------------------------------------------------------------------------


def transfer_units(
    data: dict[SessionId, SessionData], sids: list[SessionId], by: str
) -> dict[str, list[SessionId]]:
    """What transfer holds out together: a mouse with all its sessions (`group: all`), or
    a single session of the group's one mouse (`group: mouse`)."""
    if by == "mouse":
        return {f"session_{s}": [s] for s in sorted(sids)}
    units: dict[str, list[SessionId]] = {}
    for sid in sorted(sids):
        units.setdefault(mouse_of(data[sid]), []).append(sid)
    return units


def make_folds(units: list[str], folds: int, seed: int, what: str = "mice") -> list[list[str]]:
    """Split `units` (mice) into `folds` folds of near-equal size, in a seeded order."""
    if folds > len(units):
        raise ParamsError(
            f"multisession.folds is {folds} but there are only {len(units)} {what} "
            f"({', '.join(sorted(units))}) to split: lower multisession.folds to at most "
            f"{len(units)}, or add sessions"
        )
    order = np.random.default_rng(seed).permutation(len(units))
    ranked = [sorted(units)[i] for i in order]
    return [sorted(ranked[f::folds]) for f in range(folds)]


# --- transfer to new mice by folds ------------------------------------------------------


def transfer_curve(
    donor: MultiSessionDecoder, target: SessionData, params: Params
) -> tuple[dict[str, dict], dict[int, np.ndarray]]:
    """Few-shot accuracy per k of new read-ins for `target` on the donor's frozen core, in
    the few-shot stage's loop (`fewshot_curve`): the same draws, the same protocol.

    Returns the curve and {k: (repeats, P_test) predicted class} of every draw.
    """
    fs = params.fewshot
    test_X = target.test.rows(np.arange(len(target.test)))  # this session's test counts

    def fit_group(group: list[tuple[np.ndarray, Draw]]) -> list[np.ndarray]:
        views = [shot_view(target, idx, fs.protocol) for idx, _ in group]
        models = fit_readins(donor, views, [d.train_seed for _, d in group], params)
        return [
            adapted_logits(m, v.mean, v.std, test_X, params.train.batch_size)
            for m, v in zip(models, views, strict=True)
        ]

    return session_fewshot_curve(fit_group, target, fs, f"transfer to session {target.session_id}")


def transfer_by_folds(
    data: dict[SessionId, SessionData], sids: list[SessionId], params: Params
) -> tuple[dict[SessionId, dict[str, Any]], dict[SessionId, dict[int, np.ndarray]]]:
    """Transfer results of every session of the group `sids` (see the module docstring),
    and each transferred session's {k: (repeats, P_test) predicted class}.

    A group with a single mouse (or, with `group: mouse`, a single session) has nothing
    to transfer from: each of its sessions gets a result with `skipped` saying so.
    """
    p = params.multisession
    units = transfer_units(data, sids, p.group)
    what = "mice" if p.group == "all" else "sessions of this mouse"
    if len(units) < 2:
        why = f"only one of the {what} in this group: no other to train a core on"
        return {s: skipped_transfer(data[s], why, params) for s in sids}, {}
    folds = make_folds(list(units), p.folds, p.fold_seed, what)
    out: dict[SessionId, dict[str, Any]] = {}
    predicted: dict[SessionId, dict[int, np.ndarray]] = {}
    detail = readin_detail(params)
    for f, held_units in enumerate(folds):
        held = sorted(s for u in held_units for s in units[u])
        core_sids = sorted(s for s in sids if s not in held)
        log.info("fold %d/%d: core on %d sessions", f + 1, len(folds), len(core_sids))
        donor, info = train_shared(data, core_sids, params)
        for sid in held:
            target = data[sid]
            shots, predicted[sid] = transfer_curve(donor, target, params)
            out[sid] = {
                "session_id": sid,
                "specimen_id": target.specimen_id,
                "model": "transfer",
                "protocol": params.fewshot.protocol,
                "protocol_detail": detail,
                "seed": params.fewshot.seed,
                "n_test": len(target.test),
                "fold": f,
                "n_folds": len(folds),
                "held_out": held_units,
                "core_sessions": core_sids,
                "core_best_val_accuracy": info["best_val_accuracy"],
                "core_epochs": info["epochs"],
                "shots": shots,
            }
    return out, predicted


def skipped_transfer(d: SessionData, why: str, params: Params) -> dict[str, Any]:
    """The transfer result of a session that had none, and why (logged and recorded)."""
    log.info("no transfer to session %d: %s", d.session_id, why)
    return {
        "session_id": d.session_id,
        "specimen_id": d.specimen_id,
        "model": "transfer",
        "protocol": params.fewshot.protocol,
        "skipped": why,
        "shots": {},
    }
