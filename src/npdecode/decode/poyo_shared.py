"""POYO across Allen sessions, beside our shared decoder: one model, transfer by its folds.

`train_shared` fits one POYO on many sessions' training splits (unit and session
embeddings per session, every other weight shared), its epoch chosen on the mean of the
sessions' validation accuracies, with `train.poyo`'s fit (npdecode.decode.poyo_allen).
`transfer_by_folds` holds out the same mice in the same folds as our shared decoder
(npdecode.decode.transfer.transfer_units / make_folds with `multisession.folds` and
`fold_seed`), trains one POYO per fold on the other sessions and adapts it to each held-out
session the authors' way (npdecode.decode.poyo.adapt_poyo: new unit and session
embeddings, every other weight frozen; then, with `multisession.poyo_full_epochs` > 0,
everything) on the shots of the few-shot stage's draws (`fewshot_curve`: the same seeds,
shots and scoring), for our read-in's budget (`multisession.adapt_epochs` at `adapt_lr`,
no validation data). So `results/comparisons.csv` pairs POYO's transfer with ours draw by
draw. Sessions are held one at a time while training (npdecode.decode.poyo).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from npdecode.decode.fewshot import Draw, session_fewshot_curve
from npdecode.decode.poyo import SessionWindows, adapt_poyo, build_poyo, fit_poyo, predict_poyo
from npdecode.decode.poyo_allen import accuracy, poyo_fit, subset
from npdecode.decode.transfer import make_folds, transfer_units
from npdecode.formats.split import SessionData
from npdecode.models.poyo import POYODecoder
from npdecode.params import Params, SessionId

log = logging.getLogger(__name__)

# one session's POYO inputs per split (poyo_allen.session_windows)
Windows = Mapping[str, SessionWindows]


def train_shared(
    windows: Mapping[SessionId, Windows],
    sids: Sequence[SessionId],
    n_classes: int,
    params: Params,
) -> tuple[POYODecoder, dict[str, Any]]:
    """One POYO over sessions `sids`, early stopping on their mean validation accuracy."""
    train = params.train
    section = train.poyo
    tr = [windows[s]["train"] for s in sids]
    fit = poyo_fit(train, section.fit.max_epochs, train.seed)
    model = build_poyo(section.arch, tr, "class", n_classes, train.seed)
    best: dict[str, Any] = {"score": -1.0, "epoch": 0, "state": None}

    def after_epoch(epoch: int, loss: float) -> bool:
        vals = [windows[s]["val"] for s in sids]
        score = float(
            np.mean([accuracy(predict_poyo(model, v, train.batch_size), v.y) for v in vals])
        )
        if score > best["score"]:
            state = {k: v.detach().clone() for k, v in model.tensors().items()}
            best.update(score=score, epoch=epoch, state=state)
        return epoch - best["epoch"] >= section.fit.patience

    t0 = time.process_time()
    losses = fit_poyo(model, tr, fit, after_epoch=after_epoch)
    model.load_tensors(best["state"])
    info = {
        "epochs": len(losses),
        "best_epoch": best["epoch"],
        "best_val_accuracy": best["score"],
        "fit_cpu_s": round(time.process_time() - t0, 1),
        "sessions": [str(s) for s in sids],
    }
    return model.eval(), info


def adapt_fit(params: Params, seed: int) -> Any:
    """The budget of adapting to a new session: our read-in's (`multisession.adapt_epochs`
    at `adapt_lr`), the draw's seed."""
    p = params.multisession
    fit = poyo_fit(params.train, p.adapt_epochs, seed)
    return dataclasses.replace(fit, lr=p.adapt_lr)


def transfer_curve(
    donor: POYODecoder, target: SessionData, windows: Windows, params: Params, full_epochs: int = 0
) -> tuple[dict[str, dict], dict[int, np.ndarray]]:
    """POYO adapted to `target` on every few-shot draw (the few-shot stage's loop), scored on
    its test split: the curve and {k: (repeats, P_test) predicted class}."""
    fs = params.fewshot

    def fit_group(group: list[tuple[np.ndarray, Draw]]) -> list[np.ndarray]:
        out = []
        for idx, d in group:
            shots = subset(windows["train"], idx)
            model, _ = adapt_poyo(donor, shots, adapt_fit(params, d.train_seed), full_epochs)
            out.append(predict_poyo(model, windows["test"], params.train.batch_size))
        return out

    return session_fewshot_curve(
        fit_group, target, fs, f"POYO transfer to session {target.session_id}"
    )


def transfer_by_folds(
    data: Mapping[SessionId, SessionData],
    windows: Mapping[SessionId, Windows],
    sids: list[SessionId],
    params: Params,
    full_epochs: int = 0,
) -> dict[SessionId, dict[str, Any]]:
    """POYO's transfer result per held-out session (and its kept predictions under
    `predicted`), on our shared decoder's folds."""
    p = params.multisession
    units = transfer_units(dict(data), sids, p.group)
    what = "mice" if p.group == "all" else "sessions of this mouse"
    if len(units) < 2:
        return {}
    folds = make_folds(list(units), p.folds, p.fold_seed, what)
    out: dict[SessionId, dict[str, Any]] = {}
    for f, held_units in enumerate(folds):
        held = sorted(s for u in held_units for s in units[u])
        core = sorted(s for s in sids if s not in held)
        log.info("POYO fold %d/%d: trained on %d sessions", f + 1, len(folds), len(core))
        donor, info = train_shared(windows, core, data[sids[0]].n_classes, params)
        for sid in held:
            shots, predicted = transfer_curve(donor, data[sid], windows[sid], params, full_epochs)
            out[sid] = {
                "session_id": sid,
                "specimen_id": data[sid].specimen_id,
                "model": "transfer_poyo",
                "protocol": "strict",
                "protocol_detail": {
                    "adapts": "new unit and session embeddings, every other weight frozen"
                    + (f", then {full_epochs} epochs of everything" if full_epochs else ""),
                    "budget": f"{p.adapt_epochs} epochs at lr {p.adapt_lr} on the shots",
                },
                "seed": params.fewshot.seed,
                "n_test": len(data[sid].test),
                "fold": f,
                "n_folds": len(folds),
                "held_out": held_units,
                "core_sessions": core,
                "core_best_val_accuracy": info["best_val_accuracy"],
                "core_epochs": info["epochs"],
                "shots": shots,
                "predicted": predicted,
            }
    return out
