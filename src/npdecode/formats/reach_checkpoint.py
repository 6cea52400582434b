"""Checkpoints of the reaching decoders (`models/reach/<model>/<session>.pt`) and `predict`.

The same file format as an Allen checkpoint (`npdecode.formats.checkpoint`: a plain torch
state dict with the model's name, dimensions and architecture, a sha256 over all of it
checked on every load), with what a continuous decoder needs to be applied to new binned
counts: the session, the unit ids of its input columns (`<channel>/<row>` strings), the
training split's count mean and sd per unit, the decoded target's name with its training
mean and sd (the model outputs z-scored targets), the bin width and the history length.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from npdecode.errors import DataError
from npdecode.formats.checkpoint import HASH_KEY, content_hash, read_checkpoint
from npdecode.formats.files import atomic_path
from npdecode.formats.reach_split import ReachData
from npdecode.models import build_model, model_spec

DATASET = "reach"


def save_reach_checkpoint(path: str | Path, name: str, model: nn.Module, data: ReachData) -> None:
    """Save model `name` trained on reaching session `data` (atomically)."""
    dims, params = model_spec(model)
    state: dict[str, Any] = {
        "dataset": DATASET,
        "model": name,
        "dims": dims,
        "params": params,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "session": data.session_id,
        "unit_ids": [str(u) for u in data.units["unit_id"]],
        "mean": torch.from_numpy(np.asarray(data.mean, dtype=np.float64)),
        "std": torch.from_numpy(np.asarray(data.sd, dtype=np.float64)),
        "target": data.target_name,
        "target_mean": torch.from_numpy(np.asarray(data.target_mean, dtype=np.float64)),
        "target_sd": torch.from_numpy(np.asarray(data.target_sd, dtype=np.float64)),
        "bin_width_s": data.width_s,
        "history": data.history,
    }
    state[HASH_KEY] = content_hash(state)
    buffer = io.BytesIO()  # in memory: see formats/checkpoint.py's _save
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def read_reach_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict (hash verified), DataError if it is not a reaching decoder's."""
    ckpt = read_checkpoint(path)
    if ckpt.get("dataset") != DATASET:
        raise DataError(f"{path} is not a checkpoint of a reaching decoder (no dataset 'reach')")
    return ckpt


def load_reach_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode on the CPU, checkpoint dict) of a reaching checkpoint."""
    ckpt = read_reach_checkpoint(path)
    model = build_model(ckpt["model"], ckpt["dims"], ckpt["params"])
    model.load_state_dict(ckpt["state_dict"])  # ST-GAT: its unit graph is among the buffers
    return model.eval(), ckpt


def predict_reach(
    path: str | Path, counts: np.ndarray, unit_ids: Any, batch_size: int = 512
) -> np.ndarray:
    """The decoded target (n_bins, 2), in the target's unit, from binned counts.

    Args:
        path: a `models/reach/<model>/<session>.pt` checkpoint.
        counts: (n_bins, U) spike counts of consecutive bins of the checkpoint's bin width
            (integers, or floats holding whole numbers).
        unit_ids: the unit id (`<channel>/<row>`, e.g. `M1001/1`) of each column of
            `counts`; columns are reordered to the checkpoint's units (every one must be
            present, extra ones are ignored).
        batch_size: windows per forward pass.

    Returns:
        (n_bins, 2): row j is decoded from the window of `history` bins ending at bin j;
        the first history - 1 rows have no full window and are NaN.

    Raises:
        TypeError: counts or unit_ids of the wrong type.
        DataError: wrong shape, NaN, negative or fractional counts, duplicated or missing
            unit ids, or a damaged checkpoint (CorruptError).
    """
    model, ckpt = load_reach_checkpoint(path)
    x = _columns(f"predict({path})", counts, unit_ids, ckpt["unit_ids"])
    z = ((x - ckpt["mean"].numpy()) / ckpt["std"].numpy()).astype(np.float32)  # (B, U)
    h = int(ckpt["history"])
    out = np.full((len(z), 2), np.nan)
    ends = np.arange(h - 1, len(z))
    offsets = np.arange(-h + 1, 1)
    with torch.no_grad():
        for i in range(0, len(ends), batch_size):
            rows = ends[i : i + batch_size]
            windows = torch.from_numpy(z[rows[:, None] + offsets[None, :]])  # (N, h, U)
            out[rows] = model(windows).double().numpy()
    return out * ckpt["target_sd"].numpy() + ckpt["target_mean"].numpy()


def _columns(where: str, counts: Any, unit_ids: Any, want: list[str]) -> np.ndarray:
    """`counts` (n_bins, U) as float64 columns in the order of `want`, or one clear error."""
    if isinstance(counts, torch.Tensor) or isinstance(unit_ids, torch.Tensor):
        raise TypeError(f"{where}: pass numpy arrays, not torch tensors (use `.cpu().numpy()`)")
    if not isinstance(counts, np.ndarray) or counts.dtype.kind not in "iuf":
        raise TypeError(f"{where}: counts must be a numpy array of integers or floats")
    if counts.ndim != 2:
        raise DataError(
            f"{where}: counts must be (n_bins, U) = (consecutive bins, units), got shape "
            f"{counts.shape}"
        )
    if counts.dtype.kind == "f" and not np.isfinite(counts).all():
        raise DataError(f"{where}: counts hold NaN or infinite values; spike counts are finite")
    if counts.dtype.kind != "u" and (counts < 0).any():
        raise DataError(f"{where}: counts hold negative values; spike counts are >= 0")
    if counts.dtype.kind == "f" and (counts != np.round(counts)).any():
        raise DataError(
            f"{where}: counts hold values that are not whole numbers; pass spike counts "
            "binned as in training, not rates or normalised values"
        )
    ids = np.asarray(unit_ids)
    if ids.ndim != 1 or len(ids) != counts.shape[1]:
        raise DataError(
            f"{where}: unit_ids has shape {ids.shape}, counts have {counts.shape[1]} unit "
            "columns: give one id per column"
        )
    if ids.dtype.kind not in "UO" or not all(isinstance(u, str) for u in ids.tolist()):
        raise TypeError(f"{where}: unit_ids must be strings like 'M1001/1' (the units table's)")
    uniq, seen = np.unique(ids, return_counts=True)
    if (seen > 1).any():
        raise DataError(f"{where}: unit_ids repeats ids {uniq[seen > 1][:10].tolist()}")
    pos = {str(u): i for i, u in enumerate(ids.tolist())}
    missing = [u for u in want if u not in pos]
    if missing:
        raise DataError(f"{where}: counts lack units {missing[:10]} the model was trained on")
    return counts[:, [pos[u] for u in want]].astype(np.float64)
