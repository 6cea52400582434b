"""Model checkpoints as plain torch state dicts, and `predict` for new binned data.

A checkpoint holds tensors and plain values only (loadable with `weights_only=True`):
the model name and config to rebuild it, its state dict, and the session's unit ids,
class frames and train-split normalisation, so it can be applied to raw counts later.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from npdecode.errors import DataError
from npdecode.formats.files import atomic_path
from npdecode.formats.split import SessionData
from npdecode.models import build_model, model_spec
from npdecode.models.multisession import ADAPT_COMMAND, MultiSessionDecoder


def save_checkpoint(path: str | Path, name: str, model: nn.Module, data: SessionData) -> None:
    """Save model `name` trained on the session `data` (atomically)."""
    _save(path, name, model, {data.session_id: data})


def save_shared(
    path: str | Path,
    model: MultiSessionDecoder,
    data: dict[int, SessionData],
    provenance: dict[str, Any] | None = None,
) -> None:
    """Save a shared multi-session model with each of its sessions' units and normalisation
    (`provenance`: plain values saying where an adapted read-in came from)."""
    _save(path, "multisession", model, {s: data[s] for s in model.session_ids}, provenance)


def _save(
    path: str | Path,
    name: str,
    model: nn.Module,
    sessions: dict[int, SessionData],
    provenance: dict[str, Any] | None = None,
) -> None:
    first = next(iter(sessions.values()))
    dims, params = model_spec(model)
    state = {
        "model": name,
        "dims": dims,
        "params": params,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "frames": torch.from_numpy(first.frames),
        "n_bins": first.n_bins,
        "sessions": {
            str(sid): {
                "unit_ids": torch.from_numpy(d.unit_ids),
                "mean": torch.from_numpy(d.mean),
                "std": torch.from_numpy(d.std),
            }
            for sid, d in sessions.items()
        },
    }
    if provenance is not None:
        state["provenance"] = provenance
    # serialised in memory: torch.save names the zip's root folder after a file it writes
    # to, so writing the temporary file directly would put its name (and PID) in the bytes
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint; returns (model in eval mode, checkpoint dict)."""
    ckpt = torch.load(path, map_location=device, weights_only=True)
    model = build_model(ckpt["model"], ckpt["dims"], ckpt["params"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), ckpt


def predict(
    path: str | Path,
    counts: np.ndarray,
    unit_ids: np.ndarray | None = None,
    batch_size: int = 512,
    session_id: int | None = None,
) -> np.ndarray:
    """Class probabilities (P, C) for raw spike counts (P, T, U) of the checkpoint's units.

    Args:
        path: a `models/<model>/<session>.pt` checkpoint, or a shared
            `models/multisession/<group>.pt` (then `session_id` picks the read-in).
        counts: (P, T, U) spike counts, binned as in training.
        unit_ids: the unit id of each column of `counts`; if given, columns are reordered
            to the checkpoint's units (every one of them must be present).
        batch_size: presentations per forward pass.
        session_id: which of the checkpoint's sessions the counts come from (needed when it
            has several).

    Returns:
        (P, C) probabilities; column c is the image `ckpt["frames"][c]` (-1 = blank).
    """
    model, ckpt = load_checkpoint(path)
    units = _session_units(ckpt, session_id, path)
    want = units["unit_ids"].numpy()
    if unit_ids is not None:
        pos = {int(u): i for i, u in enumerate(unit_ids)}
        missing = [int(u) for u in want if int(u) not in pos]
        if missing:
            raise DataError(f"{path}: counts lack units {missing[:10]} the model was trained on")
        counts = counts[:, :, [pos[int(u)] for u in want]]
    if counts.shape[1:] != (ckpt["n_bins"], len(want)):
        raise DataError(
            f"{path}: counts have shape {counts.shape[1:]}, the model expects "
            f"{(ckpt['n_bins'], len(want))} (T, U)"
        )
    x = ((counts - units["mean"].numpy()) / units["std"].numpy()).astype(np.float32)
    # a shared decoder takes the index of the session's read-in as well
    session = (
        (ckpt["dims"]["session_ids"].index(int(units["session_id"])),)
        if ckpt["model"] == "multisession"
        else ()
    )
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = torch.as_tensor(x[i : i + batch_size], dtype=torch.float32)
            logits = model(xb, *session)
            out.append(torch.softmax(logits.float(), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(ckpt["frames"])))


def _session_units(ckpt: dict, session_id: int | None, path: str | Path) -> dict:
    """unit_ids, mean and std (and the session id) of the units `predict` feeds the model."""
    sessions = ckpt["sessions"]
    if session_id is None and len(sessions) == 1:
        session_id = int(next(iter(sessions)))
    if (
        ckpt["model"] == "multisession"
        and session_id is not None
        and str(session_id) not in sessions
    ):
        raise DataError(
            f"{path} has no read-in for session {session_id} (it has read-ins for sessions "
            f"{sorted(sessions, key=int)}): fit one with `{ADAPT_COMMAND} {path} "
            f"data/split/{session_id} --session-id {session_id} --out "
            f"models/adapted/{session_id}.pt`"
        )
    if session_id is None or str(session_id) not in sessions:
        raise DataError(
            f"{path} is a model of sessions {sorted(sessions, key=int)}: "
            f"pass session_id= one of them (got {session_id})"
        )
    return {**sessions[str(session_id)], "session_id": session_id}
