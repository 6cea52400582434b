"""Decoders of a reaching split folder: the references (Wiener, Kalman, the twin's ideal
decoder) and the deep models with a regression head, scored the same way.

Every decoder is fitted on the training rows (model choices on the validation rows) and
predicts the target at the test rows; `score` gives R² per axis and overall with 95 %
block-bootstrap intervals (`npdecode.evaluation`, blocks of `BLOCK_S` seconds), and
`compare` the paired differences on the same resampled test blocks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from npdecode.decode.task import RegressionTask
from npdecode.decode.training import (
    FitOptions,
    fit,
    fit_fixed,
    fit_options,
    predict_logits,
    seed_everything,
)
from npdecode.errors import ParamsError
from npdecode.evaluation import BLOCK_S
from npdecode.formats.macaque_truth import MacaqueTruth, in_unit_order
from npdecode.formats.reach_split import ReachData
from npdecode.models import build_model, kalman, wiener
from npdecode.models.stgat import STGAT
from npdecode.params import GraphParams, TrainParams
from npdecode.preprocess import unit_graph
from npdecode.reaching import bins, ideal

COLUMNS = {"position": slice(0, 2), "velocity": slice(2, 4), "acceleration": slice(4, 6)}


def task_of(data: ReachData, split: str = "train") -> RegressionTask:
    """The regression task of a session: 2-D target, bootstrap blocks of `BLOCK_S`, shots
    inside the runs of contiguous bins of `split` (a new run after every gap in rows)."""
    rows = data.rows[split]
    runs = tuple(int(i) for i in np.flatnonzero(np.diff(rows) != 1) + 1)
    block = max(1, int(round(BLOCK_S / data.width_s)))
    return RegressionTask(n_outputs=2, block=block, runs=runs, chunk=block)


def truth_for_units(truth: MacaqueTruth, units: pd.DataFrame) -> MacaqueTruth | None:
    """The truth's units in the split's unit order (matched by channel index and row, every
    per-unit field: tuning, leads, noise), or None when some unit has no truth (threshold
    crossings: no sorted unit's tuning)."""
    try:
        return in_unit_order(truth, units["channel_index"].to_numpy(), units["row"].to_numpy())
    except ValueError:
        return None


def references(
    data: ReachData, truth: MacaqueTruth | None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Test predictions (N, 2) of Wiener, Kalman and (twin, sorted units, position or
    velocity target) the ideal decoder; and what each chose (ridge, lag) or why absent."""
    tr, va, te = (data.rows[s] for s in ("train", "val", "test"))
    y = data.target()
    win = bins.history(data.counts.astype(np.float32), data.history)  # (B, h, U)
    w = wiener.fit(win[tr], y[tr], win[va], y[va])
    states = kalman.state(data.pos, data.vel, data.acc)
    k = kalman.fit(data.counts, states, tr, va)
    preds = {
        "wiener": w.predict(win[te]),
        "kalman": k.filter(data.counts)[te, COLUMNS[data.target_name]],
    }
    info: dict[str, Any] = {"wiener_ridge": w.alpha, "kalman_lag_bins": k.lag}
    matched = None if truth is None else truth_for_units(truth, data.units)
    if matched is not None and data.target_name in ("position", "velocity"):
        # the true model needs no fitting; only the test bins are decoded (a tenth of the cost)
        est = ideal.decode(data.counts, matched, data.width_s, rows=te)
        preds["ideal"] = est[te, COLUMNS[data.target_name]]
    else:
        info["ideal_absent"] = (
            "no truth (a real session)"
            if truth is None
            else "the truth tunes sorted units only"
            if matched is None
            else "the ideal decoder estimates position and velocity only"
        )
    return preds, info


def score(data: ReachData, preds: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """R² (per axis, overall), r and 95 % intervals of each decoder on the test rows."""
    task, y = task_of(data), data.y("test").astype(np.float64)
    return {name: task.metrics(p, y) for name, p in preds.items()}


def compare(data: ReachData, preds: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Every pair of decoders a, b (a listed first): R²(a) - R²(b) on the same resampled
    test blocks, its interval, p and verdict."""
    task, y = task_of(data), data.y("test").astype(np.float64)
    names = list(preds)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            out.append({"session": data.session_id, "a": a, "b": b,
                        **task.paired(preds[a], preds[b], y)})  # fmt: skip
    return out


def prediction_table(data: ReachData, preds: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per test bin: its index and start time, the true target and each decoder's."""
    te = data.rows["test"]
    y = data.y("test")
    cols: dict[str, Any] = {
        "bin": te,
        "time_s": data.time[te],
        "true_x": y[:, 0],
        "true_y": y[:, 1],
    }
    for name, p in preds.items():
        cols[f"{name}_x"], cols[f"{name}_y"] = p[:, 0], p[:, 1]
    return pd.DataFrame(cols)


def _options(train: TrainParams, name: str, cap: int, task: RegressionTask) -> FitOptions:
    """The loop's options of deep model `name` (its fit settings), epochs capped at `cap`."""
    opts = fit_options(train, train.deep(name).fit, key=f"train.{name}", task=task)
    return dataclasses.replace(opts, max_epochs=min(opts.max_epochs, cap))


def window_bins(rows: np.ndarray, history: int) -> np.ndarray:
    """Sorted bins read by the history windows ending at `rows` (each bin once)."""
    return np.unique(rows[:, None] + np.arange(-history + 1, 1)[None, :])


def reach_graph(
    data: ReachData, rows: np.ndarray, graph: GraphParams, counts: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """ST-GAT's kNN unit graph (`split.graph`, `npdecode.preprocess.unit_graph`) from the
    bins of the windows ending at `rows` only (the training rows, or a draw's shots):
    ((2, E) edges, (E,) weights). `counts` (B, U) default the session's.

    ParamsError for `geometry`: a reaching `.mat` names channels ("M1 001") but holds no
    electrode positions (the Utah arrays' maps are not in the record), and channel order
    is not distance on the array.
    """
    if graph.method != "correlation":
        raise ParamsError(
            f"session {data.session_id}: split.graph.method {graph.method!r} needs electrode "
            "positions, which a reaching session does not have (its .mat names channels, "
            "not where they sit on the array): use split.graph.method: correlation for "
            "ST-GAT on reaching sessions"
        )
    c = data.counts if counts is None else counts
    used = c[window_bins(rows, data.history)].astype(np.float32)  # (N, U)
    return unit_graph(used[None], data.units, graph)


def build(
    name: str,
    data: ReachData,
    train: TrainParams,
    graph: GraphParams | None = None,
    rows: np.ndarray | None = None,
) -> nn.Module:
    """Model `name` (train.<name>'s architecture) mapping (B, h, U) windows to the task's
    outputs (B, 2): the same model as for Allen, its head sized by the task. ST-GAT also
    takes its unit graph (`graph` settings) from the windows ending at `rows` (default the
    training rows)."""
    dims = {"n_units": data.n_units, "n_bins": data.history,
            "n_classes": task_of(data).output_size}  # fmt: skip
    if name != "stgat":
        seed_everything(train.seed)
        return build_model(name, dims, train.deep(name).arch)
    if graph is None:
        raise ValueError("ST-GAT needs the unit graph's settings (params split.graph)")
    edges, weights = reach_graph(data, data.rows["train"] if rows is None else rows, graph)
    seed_everything(train.seed)
    model = build_model(name, {**dims, "n_edges": edges.shape[1]}, train.deep(name).arch)
    assert isinstance(model, STGAT)
    model.set_graph(torch.from_numpy(edges), torch.from_numpy(weights))
    return model


def fit_deep(
    name: str,
    data: ReachData,
    train: TrainParams,
    cap: int,
    live_dir: Path | None = None,
    graph: GraphParams | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train deep model `name` on the training windows (targets z-scored with the training
    statistics), early stopping on validation R²; (model, fit facts). `graph`: ST-GAT's
    unit graph settings (the graph from the training windows only)."""
    net = build(name, data, train, graph)
    task = task_of(data)
    z = {s: (data.y(s) - data.target_mean) / data.target_sd for s in ("train", "val")}
    tr = (data.windows("train"), z["train"].astype(np.float32))
    va = (data.windows("val"), z["val"].astype(np.float32))
    return fit(net, tr, va, _options(train, name, cap, task), live_dir)


def predict(net: nn.Module, data: ReachData, split: str, batch_size: int = 256) -> np.ndarray:
    """(N, 2) decoded target at the rows of `split`, in the target's units."""
    out = predict_logits(net, data.windows(split), batch_size).cpu().numpy().astype(np.float64)
    return out * data.target_sd + data.target_mean


def fit_shots(
    name: str,
    data: ReachData,
    train: TrainParams,
    idx: np.ndarray,
    steps: int,
    seed: int,
    graph: GraphParams | None = None,
) -> np.ndarray:
    """Strict few-shot: fit `name` on training rows `idx` only (inputs and targets z-scored
    with the shots' own statistics, ST-GAT's unit graph from the shots' bins, a fixed
    budget of about `steps` optimiser steps, no validation data) and return its test
    predictions (N, 2)."""
    rows = data.rows["train"][idx]
    c = data.counts[window_bins(rows, data.history)].astype(np.float64)
    mean, sd = c.mean(axis=0), c.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    y = data.target()[rows]
    ym, ys = y.mean(axis=0), np.where(y.std(axis=0) > 0, y.std(axis=0), 1.0)
    shot = dataclasses.replace(data, mean=mean, sd=sd)

    def windows(r: np.ndarray) -> np.ndarray:
        return shot.windows("train", r)

    net = build(name, data, dataclasses.replace(train, seed=seed), graph, rows)
    task = task_of(data)
    epochs = max(1, int(round(steps / max(1, -(-len(rows) // train.batch_size)))))
    opts = dataclasses.replace(_options(train, name, epochs, task), seed=seed, max_epochs=epochs)
    net, _ = fit_fixed(net, (windows(rows), ((y - ym) / ys).astype(np.float32)), opts)
    out = predict_logits(net, windows(data.rows["test"]), 256).cpu().numpy().astype(np.float64)
    return out * ys + ym
