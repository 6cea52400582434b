"""POYO per monkey across days (macaque reaching), beside our shared decoder (issue 23).

The groups are ours (npdecode.decode.crossday): per monkey (`group_by_subject`) and date
window (`date_windows` with `reach.crossday.window_days`), one POYO over the window's
sessions (a unit and a session embedding per session, every other weight shared), its
epoch chosen on the pooled validation rows (`poyo.fit_best_epoch`, R² of the z-scored
last-bin targets of every session together), scored on each session's test rows
(`crossday.score`: R² with block-bootstrap intervals). Inputs are a reach session's POYO
windows (npdecode.decode.poyo_reach: spikes of the split's units, a target per bin, the
last bin scored).

Transfer to the monkey's latest day (`crossday.held_out_by_date`): a POYO trained on the
earlier days is adapted the authors' way (`poyo.adapt_poyo`: new unit and session
embeddings, every other weight frozen; then `train.poyo.adapt_full_epochs` epochs of
everything) on the same draws as our transfer (`crossday.shot_rows`, every k and
`reach.fewshot.repeats`), targets z-scored with the shots' statistics (strict protocol),
for our read-in's budget: about `reach.fewshot.steps` optimiser steps at
`reach.crossday.adapt_lr`; scored on the held-out day's test rows.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from npdecode.decode import crossday, poyo_reach
from npdecode.decode.poyo import POYOFit, adapt_poyo, build_poyo, fit_best_epoch
from npdecode.decode.poyo_allen import poyo_fit
from npdecode.evaluation import r2_scores
from npdecode.formats.reach_split import ReachData
from npdecode.models.poyo import POYODecoder
from npdecode.params import Params

log = logging.getLogger(__name__)

# a session's spike trains (s), in its split's unit order (poyo_reach.read_spikes)
Spikes = Mapping[str, list[np.ndarray]]


def train_shared(
    sessions: list[ReachData], spikes: Spikes, params: Params
) -> tuple[POYODecoder, dict[str, Any]]:
    """One POYO over `sessions` (each target z-scored with its training statistics), at
    most min(`train.poyo.max_epochs`, `reach.max_epochs`) epochs, the epoch kept the best
    pooled validation R² (z-scored, last bin) within `train.poyo.patience`."""
    train = params.train
    section = train.poyo
    z = [(d.target_mean, d.target_sd) for d in sessions]
    tr = [poyo_reach.windows(d, spikes[d.session_id], d.rows["train"], *s)
          for d, s in zip(sessions, z, strict=True)]  # fmt: skip
    va = [poyo_reach.windows(d, spikes[d.session_id], d.rows["val"], *s)
          for d, s in zip(sessions, z, strict=True)]  # fmt: skip
    val_y = np.concatenate([crossday.z_target(d, d.rows["val"]) for d in sessions])
    zero, one = np.zeros(2), np.ones(2)

    def pooled_val_r2() -> float:
        pred = np.concatenate([poyo_reach.last_bin(model, v, zero, one) for v in va])
        return float(r2_scores(val_y, pred)["r2"])

    fit = poyo_fit(train, min(section.fit.max_epochs, params.reach.max_epochs), train.seed)
    model = build_poyo(section.arch, tr, "bins", seed=train.seed)
    losses, best = fit_best_epoch(model, tr, fit, pooled_val_r2, section.fit.patience)
    info = {  # no CPU time: same inputs, same bytes (bench/macaque_crossday.py times it)
        "sessions": [d.session_id for d in sessions],
        "epochs": len(losses),
        "best_epoch": best["epoch"],
        "best_val_r2": best["score"],
    }
    log.info("POYO over %s: %d epochs, best %d (val R² %.3f)", info["sessions"],
             info["epochs"], info["best_epoch"], info["best_val_r2"])  # fmt: skip
    return model.eval(), info


def predict_test(model: POYODecoder, d: ReachData, spikes: list[np.ndarray]) -> np.ndarray:
    """(N, 2) decoded target at `d`'s test rows (the model knows session `d`)."""
    return poyo_reach.predict_split(model, d, spikes, "test")


def shared_by_window(
    sessions: list[ReachData], spikes: Spikes, params: Params
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """Per session: POYO shared over its `date_windows` group (one session: its own POYO),
    scored on its test rows; and {session: (N, 2) test predictions} for pairing."""
    by_name = {d.session_id: d for d in sessions}
    out: dict[str, dict[str, Any]] = {}
    predicted: dict[str, np.ndarray] = {}
    for group in crossday.date_windows(list(by_name), params.reach.crossday.window_days):
        members = [by_name[n] for n in group]
        model, info = train_shared(members, spikes, params)
        for d in members:
            pred = predict_test(model, d, spikes[d.session_id])
            predicted[d.session_id] = pred
            out[d.session_id] = {
                **crossday.session_row(d, group),
                "poyo_shared": crossday.score(d, pred),
                "poyo_epochs": info["epochs"],
                "poyo_best_epoch": info["best_epoch"],
            }
    return {n: out[n] for n in by_name}, predicted


def adapt_fit(params: Params, n_shots: int, seed: int) -> POYOFit:
    """Our transfer read-in's budget for POYO's adaptation: about `reach.fewshot.steps`
    optimiser steps (whole epochs over the shots) at `reach.crossday.adapt_lr`."""
    bs = params.train.batch_size
    epochs = max(1, int(round(params.reach.fewshot.steps / max(1, -(-n_shots // bs)))))
    fit = poyo_fit(params.train, epochs, seed)
    return dataclasses.replace(fit, lr=params.reach.crossday.adapt_lr)


def adapt_on_shots(
    donor: POYODecoder,
    d: ReachData,
    spikes: list[np.ndarray],
    rows: np.ndarray,
    params: Params,
    seed: int,
) -> tuple[POYODecoder, np.ndarray]:
    """The donor adapted to `d` on training rows `rows` only (targets z-scored with the
    shots' statistics) and its (N, 2) predictions at d's test rows."""
    y = d.target()[rows]
    ym, ys = y.mean(axis=0), np.where(y.std(axis=0) > 0, y.std(axis=0), 1.0)
    shots = poyo_reach.windows(d, spikes, rows, ym, ys)
    fit = adapt_fit(params, len(rows), seed)
    model, _ = adapt_poyo(donor, shots, fit, params.train.poyo.adapt_full_epochs)
    test = poyo_reach.windows(d, spikes, d.rows["test"], ym, ys)
    return model, poyo_reach.last_bin(model, test, ym, ys)


def transfer_later_day(
    sessions: list[ReachData],
    spikes: Spikes,
    params: Params,
    minutes: tuple[float, ...],
) -> tuple[dict[str, Any], dict[str, list[np.ndarray]]]:
    """POYO's transfer to one monkey's latest day on our transfer's draws: per k minutes
    every draw's R² on the held-out day's test rows and their mean; and {k: [(N, 2) test
    predictions per draw]} for pairing."""
    by_name = {d.session_id: d for d in sessions}
    earlier, held = crossday.held_out_by_date(list(by_name), 1)
    target = by_name[held[0]]
    donor, info = train_shared([by_name[n] for n in earlier], spikes, params)
    fs = params.reach.fewshot
    curve: dict[str, Any] = {}
    predicted: dict[str, list[np.ndarray]] = {}
    for k in minutes:
        draws, preds = [], []
        for r in range(fs.repeats):
            rows = crossday.shot_rows(target, k, fs.seed, r)
            _, pred = adapt_on_shots(donor, target, spikes[target.session_id], rows, params,
                                     fs.seed * 1000 + r)  # fmt: skip
            m = crossday.score(target, pred)
            draws.append({"repeat": r, "n_shots": len(rows), **crossday.r2_part(m)})
            preds.append(pred)
        curve[f"{k:g}"] = {"minutes": k, "r2_mean": float(np.mean([x["r2"] for x in draws])),
                           "draws": draws}  # fmt: skip
        predicted[f"{k:g}"] = preds
    full = params.train.poyo.adapt_full_epochs
    result = {
        "session": target.session_id,
        "core_sessions": earlier,
        "core_epochs": info["epochs"],
        "core_best_val_r2": info["best_val_r2"],
        "protocol": "strict",
        "adapts": "new unit and session embeddings, every other weight frozen"
        + (f", then {full} epochs of everything" if full else ""),
        "budget": f"about {fs.steps} steps at lr {params.reach.crossday.adapt_lr}"
        " (reach.crossday.adapt_lr)",
        "curve": curve,
    }
    return result, predicted
