"""POYO on an Allen session's split: spike tokens per presentation, a class per presentation.

The split folder keeps binned counts only; POYO reads spikes. A presentation's tokens are
the spikes of the split's units inside its window [start_time, stop_time), read from the
session's NWB file (`data/raw/session_<id>/`) with the windows the bin stage used
(`data/binned/<id>.presentations.parquet`, stops snapped as binning.py snaps them), and
with the spikes inside the NWB's invalid_times removed per probe, as the bin stage removes
them (binning.invalid_spikes). So a presentation's tokens binned into the split's bins
are its counts in the split (tests/test_poyo_pipeline.py checks that on a real split).

Training follows our models' protocol: the train split fits, the validation split picks
the epoch (early stopping with `train.poyo.patience`), the test split is scored once.
POYO's few-shot curve is `npdecode.decode.poyo_fewshot`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from npdecode.binning import invalid_spikes
from npdecode.decode.poyo import (
    POYOFit,
    SessionWindows,
    build_poyo,
    fit_best_epoch,
    predict_poyo,
)
from npdecode.decode.training import resolve_device
from npdecode.errors import DataError
from npdecode.formats.binned import read_meta
from npdecode.formats.split import SPLITS, SessionData
from npdecode.models.poyo import POYODecoder
from npdecode.nwb import read as nwb
from npdecode.params import TrainParams, integer_id
from npdecode.paths import Layout

# --- inputs ---------------------------------------------------------------------------


def read_spikes(layout: Layout, data: SessionData) -> list[np.ndarray]:
    """The spike times (s) of the split's units, in its column order, from the session's NWB
    file, without the spikes inside its invalid_times (per probe, as the bin stage)."""
    sid = data.session_id
    path = layout.nwb(sid)
    nwb_id = integer_id(sid, "POYO's spike reader (Allen-format NWB)")
    trains = nwb.read_unit_spike_times(path, nwb_id, data.unit_ids)
    invalid = nwb.read_invalid_times(path, nwb_id)
    if len(invalid):
        inside, _ = invalid_spikes(trains, data.units, invalid)
        trains = [t[~np.isin(t, s)] if len(s) else t for t, s in zip(trains, inside, strict=True)]
    return trains


def read_windows(layout: Layout, data: SessionData) -> pd.DataFrame:
    """start_time, stop_time per presentation id (the index) of the bin stage's table."""
    path = layout.binned_presentations(data.session_id)
    table = read_meta(path).set_index("presentation_id")
    for split in SPLITS:
        ids = getattr(data, split).presentation_id
        missing = np.setdiff1d(ids, table.index.to_numpy())
        if len(missing):
            raise DataError(
                f"session {data.session_id}: {path} has no presentation {int(missing[0])} of "
                f"the {split} split ({len(missing)} missing): rerun the bin stage"
            )
    return table[["start_time", "stop_time"]]


def split_windows(
    data: SessionData, spikes: list[np.ndarray], windows: pd.DataFrame, split: str
) -> SessionWindows:
    """One split's presentations as POYO's inputs: windows, classes and the session's spikes.

    `data.unit_ids` name the units (POYO's vocabulary words), so two sessions never share
    a unit embedding unless they share a session id.
    """
    part = getattr(data, split)
    rows = windows.loc[part.presentation_id]
    return SessionWindows.of(
        str(data.session_id),
        spikes,
        rows["start_time"].to_numpy(np.float64),
        rows["stop_time"].to_numpy(np.float64),
        np.asarray(part.y, np.int64),
        data.unit_ids.tolist(),
    )


def session_windows(layout: Layout, data: SessionData) -> dict[str, SessionWindows]:
    """Every split of a session as POYO's inputs (the spikes read once, shared)."""
    spikes, windows = read_spikes(layout, data), read_windows(layout, data)
    return {s: split_windows(data, spikes, windows, s) for s in SPLITS}


def subset(d: SessionWindows, idx: np.ndarray) -> SessionWindows:
    """The windows `idx` of `d` (a few-shot draw's shots), the same spikes."""
    return SessionWindows(d.session, d.spikes, d.starts[idx], d.stops[idx], d.y[idx], d.unit_ids)


# --- fitting --------------------------------------------------------------------------


def poyo_fit(train: TrainParams, epochs: int, seed: int) -> POYOFit:
    """POYO's loop settings from params: `train.poyo`'s rate and decay, the shared batch
    size and device; mixed precision (`train.amp`) on CUDA only, as our models."""
    device = resolve_device(train.device)
    f = train.poyo.fit
    amp = train.amp if device.type == "cuda" else "off"
    return POYOFit(epochs, train.batch_size, f.lr, f.weight_decay, seed, str(device), amp)


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Fraction of windows whose largest logit is their class."""
    return float(np.mean(np.argmax(logits, axis=1) == y)) if len(y) else 0.0


def train_split(
    windows: Mapping[str, SessionWindows], n_classes: int, train: TrainParams
) -> tuple[POYODecoder, dict[str, Any]]:
    """POYO fitted on the train split, its epoch chosen on the validation split (best
    accuracy; a tie keeps the earlier epoch), at most
    `train.poyo.max_epochs`, stopping after `patience` epochs without a better one.
    Returns (model in eval mode with the best epoch's weights, fit facts)."""
    section = train.poyo
    fit = poyo_fit(train, section.fit.max_epochs, train.seed)
    model = build_poyo(section.arch, [windows["train"]], "class", n_classes, train.seed)
    val = windows["val"]
    t0 = time.process_time()
    losses, best = fit_best_epoch(
        model,
        [windows["train"]],
        fit,
        lambda: accuracy(predict_poyo(model, val, train.batch_size), val.y),
        section.fit.patience,
    )
    cpu_s = time.process_time() - t0
    steps_per_epoch = -(-len(windows["train"].starts) // train.batch_size)
    info = {
        "epochs": len(losses),
        "best_epoch": best["epoch"],
        "best_val_accuracy": best["score"],
        "steps": len(losses) * steps_per_epoch,
        "fit_cpu_s": round(cpu_s, 1),
        "device": fit.device,
        "amp": fit.amp,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "train_loss": [round(x, 5) for x in losses],
        "val_accuracy": [round(x, 5) for x in best["curve"]],
    }
    return model.eval(), info


def write_curves(live_dir: Path, info: Mapping[str, Any]) -> None:
    """POYO's learning curves (train loss, val accuracy per epoch) as DVCLive writes our
    models' (`live_dir`: the train stage's dvclive folder)."""
    from dvclive import Live  # imported lazily: it pulls in DVC

    live = Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None)
    for loss, acc in zip(info["train_loss"], info["val_accuracy"], strict=True):
        live.log_metric("train/loss", loss)
        live.log_metric("val/accuracy", acc)
        live.next_step()
    live.summary.update({"best_epoch": info["best_epoch"]})
    live.end()


# --- checkpoint -----------------------------------------------------------------------


def save_poyo(
    path: Path, model: POYODecoder, data: SessionData, provenance: dict[str, Any] | None = None
) -> None:
    """A POYO checkpoint: its spec, its weights as plain tensors and the classes' frames
    (`npdecode.formats.checkpoint`'s content hash and atomic write; no pickled objects);
    `provenance`: plain values saying where an adapted model came from."""
    from npdecode.formats.checkpoint import write_state

    state: dict[str, Any] = {
        "model": "poyo",
        "spec": model.spec(),
        "tensors": {k: v.detach().cpu() for k, v in model.tensors().items()},
        "frames": torch.from_numpy(np.asarray(data.frames)),
    }
    if provenance is not None:
        state["provenance"] = provenance
    write_state(path, state)


def load_poyo(path: str | Path, device: str = "cpu") -> tuple[POYODecoder, dict[str, Any]]:
    """The POYO model of a checkpoint written by `save_poyo` (hash checked), in eval mode."""
    from npdecode.formats.checkpoint import read_checkpoint

    ckpt = read_checkpoint(path, device)
    if ckpt.get("model") != "poyo":
        raise DataError(f"{path} holds model {ckpt.get('model')!r}, not a POYO checkpoint")
    model = POYODecoder.from_spec(ckpt["spec"])
    model.load_tensors(ckpt["tensors"])
    return model.to(device).eval(), ckpt
