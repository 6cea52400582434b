"""POYO on a macaque reaching session: spike tokens of each history window, a velocity per bin.

The reaching split folder keeps binned counts; POYO reads the spikes of the split's units
from the session's `.mat` (`data/raw/reach/<name>/`, `reach.units` as the split used
them). A scored row r is the window of its `history` bins, [time[r - h + 1], time[r] + w),
the same bins our decoders read (formats/reach_split.py). POYO's `bins` readout puts one
query at the centre of each of the h bins and is trained on the target of every bin (its
authors' dense readout); it is scored, like ours, on the target of the window's last bin.
Targets are z-scored with the training statistics (a strict few-shot draw: its shots').

Training follows our deep decoders' (npdecode.reaching.decoders): early stopping on the
validation R² within `min(train.poyo.max_epochs, reach.max_epochs)` epochs; a strict
few-shot draw trains its shots alone for about `reach.fewshot.steps` optimiser steps.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from npdecode.decode.poyo import SessionWindows, build_poyo, fit_best_epoch, fit_poyo, predict_poyo
from npdecode.decode.poyo_allen import poyo_fit
from npdecode.errors import DataError
from npdecode.evaluation import r2_scores
from npdecode.formats.reach_split import ReachData
from npdecode.mat.read import read_mat
from npdecode.models.poyo import POYODecoder
from npdecode.params import TrainParams
from npdecode.paths import Layout
from npdecode.reaching.session import unit_table


def read_spikes(layout: Layout, data: ReachData, units: str) -> list[np.ndarray]:
    """The spike trains (s) of the split's units, in its column order, from the `.mat`."""
    name = data.session_id
    r = read_mat(layout.reach_mat(name), name, units)  # type: ignore[arg-type]
    ids = unit_table(r)["unit_id"].tolist()
    where = {u: i for i, u in enumerate(ids)}
    want = data.units["unit_id"].tolist()
    missing = [u for u in want if u not in where]
    if missing:
        raise DataError(
            f"session {name}: {layout.reach_mat(name)} has no unit {missing[0]} of the split "
            f"({len(missing)} missing): rerun the split stage"
        )
    return [r.spike_times[where[u]] for u in want]


def windows(
    data: ReachData,
    spikes: list[np.ndarray],
    rows: np.ndarray,
    y_mean: np.ndarray,
    y_sd: np.ndarray,
) -> SessionWindows:
    """The history windows ending at bins `rows` as POYO's inputs; targets (N, h, 2) z-scored
    with (y_mean, y_sd)."""
    h, w = data.history, data.width_s
    first = rows - h + 1
    offsets = np.arange(-h + 1, 1)
    y = (data.target()[rows[:, None] + offsets[None, :]] - y_mean) / y_sd  # (N, h, 2)
    return SessionWindows.of(
        data.session_id,
        spikes,
        data.time[first].astype(np.float64),
        data.time[rows].astype(np.float64) + w,
        y.astype(np.float32),
        data.units["unit_id"].tolist(),
    )


def last_bin(model: POYODecoder, d: SessionWindows, y_mean: np.ndarray, y_sd: np.ndarray):
    """(N, 2) float64 decoded target at each window's last bin, in the target's units."""
    out = predict_poyo(model, d)[:, -1].astype(np.float64)  # (N, h, 2) -> (N, 2)
    return out * y_sd + y_mean


def train_reach(
    data: ReachData, spikes: list[np.ndarray], train: TrainParams, cap: int
) -> tuple[POYODecoder, dict[str, Any]]:
    """POYO fitted on the training rows, its epoch chosen on the validation R² (last bin),
    at most min(`train.poyo.max_epochs`, `cap`) epochs with `train.poyo.patience`.
    Returns (model in eval mode, fit facts)."""
    m, sd = data.target_mean, data.target_sd
    tr = windows(data, spikes, data.rows["train"], m, sd)
    va = windows(data, spikes, data.rows["val"], m, sd)
    val_y = data.y("val").astype(np.float64)
    section = train.poyo
    fit = poyo_fit(train, min(section.fit.max_epochs, cap), train.seed)
    model = build_poyo(section.arch, [tr], "bins", seed=train.seed)
    t0 = time.process_time()
    losses, best = fit_best_epoch(
        model,
        [tr],
        fit,
        lambda: float(r2_scores(val_y, last_bin(model, va, m, sd))["r2"]),
        section.fit.patience,
    )
    info = {
        "epochs": len(losses),
        "best_epoch": best["epoch"],
        "best_val_r2": best["score"],
        "steps": len(losses) * -(-len(tr.starts) // train.batch_size),
        "fit_cpu_s": round(time.process_time() - t0, 1),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "val_r2": [round(x, 5) for x in best["curve"]],
    }
    return model.eval(), info


def predict_split(
    model: POYODecoder, data: ReachData, spikes: list[np.ndarray], split: str
) -> np.ndarray:
    """(N, 2) decoded target at the rows of `split`, in the target's units."""
    m, sd = data.target_mean, data.target_sd
    return last_bin(model, windows(data, spikes, data.rows[split], m, sd), m, sd)


def fit_shots(
    data: ReachData,
    spikes: list[np.ndarray],
    train: TrainParams,
    idx: np.ndarray,
    steps: int,
    seed: int,
) -> np.ndarray:
    """Strict few-shot: POYO fitted on training rows `idx` alone (targets z-scored with the
    shots' statistics, about `steps` optimiser steps as `reaching.decoders.fit_shots`, no
    validation data); its test predictions (N, 2)."""
    rows = data.rows["train"][idx]
    y = data.target()[rows]
    ym, ys = y.mean(axis=0), np.where(y.std(axis=0) > 0, y.std(axis=0), 1.0)
    shots = windows(data, spikes, rows, ym, ys)
    epochs = max(1, int(round(steps / max(1, -(-len(rows) // train.batch_size)))))
    model = build_poyo(train.poyo.arch, [shots], "bins", seed=seed)
    fit_poyo(model, [shots], poyo_fit(train, epochs, seed))
    test = windows(data, spikes, data.rows["test"], ym, ys)
    return last_bin(model.eval(), test, ym, ys)
