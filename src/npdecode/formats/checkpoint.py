"""Model checkpoints as plain torch state dicts, and `predict` for new binned data.

A checkpoint holds tensors and plain values only (loadable with `weights_only=True`):
the model name and config to rebuild it, its state dict, and the session's unit ids,
class frames and train-split normalisation, so it can be applied to raw counts later.
It also holds `sha256`, a hash of all of that content, checked on every load: a
checkpoint whose bytes changed is refused, never used with altered weights.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from npdecode.errors import DataError
from npdecode.formats.files import atomic_path, corrupt
from npdecode.formats.split import SessionData
from npdecode.models import build_model, model_spec
from npdecode.models.multisession import ADAPT_COMMAND, MultiSessionDecoder
from npdecode.params import SessionId, session_id_of

HASH_KEY = "sha256"
# what torch.load raises on a damaged file that still passes zip's checks


def content_hash(state: dict[str, Any]) -> str:
    """sha256 of a checkpoint's content: every tensor's dtype, shape and bytes, every value.

    Keys are visited in sorted order, so the hash depends on content only.
    """
    h = hashlib.sha256()

    def feed(obj: Any) -> None:
        if isinstance(obj, dict):
            h.update(b"{")
            for key in sorted(obj, key=str):
                if key != HASH_KEY:
                    h.update(repr(str(key)).encode())
                    feed(obj[key])
            h.update(b"}")
        elif isinstance(obj, list | tuple):
            h.update(b"[")
            for item in obj:
                feed(item)
            h.update(b"]")
        elif isinstance(obj, torch.Tensor):
            t = obj.detach().cpu().contiguous()
            h.update(f"tensor {t.dtype} {tuple(t.shape)}:".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:  # int, float, str, bool, None
            h.update(f"{type(obj).__name__} {obj!r};".encode())

    feed(state)
    return h.hexdigest()


def save_checkpoint(path: str | Path, name: str, model: nn.Module, data: SessionData) -> None:
    """Save model `name` trained on the session `data` (atomically)."""
    _save(path, name, model, {data.session_id: data})


def save_shared(
    path: str | Path,
    model: MultiSessionDecoder,
    data: dict[SessionId, SessionData],
    provenance: dict[str, Any] | None = None,
) -> None:
    """Save a shared multi-session model with each of its sessions' units and normalisation
    (`provenance`: plain values saying where an adapted read-in came from)."""
    _save(path, "multisession", model, {s: data[s] for s in model.session_ids}, provenance)


def _save(
    path: str | Path,
    name: str,
    model: nn.Module,
    sessions: dict[SessionId, SessionData],
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
    state[HASH_KEY] = content_hash(state)  # over everything, provenance included
    # serialised in memory: torch.save names the zip's root folder after a file it writes
    # to, so writing the temporary file directly would put its name (and PID) in the bytes
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def write_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write a checkpoint dict of tensors and plain values (a model outside the registry,
    e.g. POYO: npdecode.decode.poyo_allen) with its content hash, atomically."""
    state = {**state, HASH_KEY: None}
    state[HASH_KEY] = content_hash(state)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def read_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict, its content hash verified (CorruptError if the bytes changed)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist (train the model first: `dvc repro`)")
    # A torch checkpoint is a zip: check every member's CRC-32 before unpickling, which on
    # damaged bytes fails in arbitrary ways (KeyError, struct.error, ...) or not at all.
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
        raise corrupt(path, f"not a readable torch checkpoint: {err}") from err
    if bad is not None:
        raise corrupt(path, f"member {bad!r} fails its CRC-32")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except OSError:
        raise  # the disk or a permission: the stage's own one-line message (npdecode.cli)
    except Exception as err:
        # the CRCs passed, so whatever torch's weights-only loader raises here (its unpickler's
        # error, RuntimeError, ValueError, KeyError, struct.error, ...) means the file is not
        # a checkpoint of ours: one line naming the file, torch's reason chained
        raise corrupt(path, f"not a readable torch checkpoint: {_torch_reason(err)}") from err
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get(HASH_KEY), str):
        raise corrupt(path, f"no {HASH_KEY!r} content hash")
    if content_hash(ckpt) != ckpt[HASH_KEY]:
        raise corrupt(path, "its weights, normalisation or settings do not match its sha256")
    return ckpt


def _torch_reason(err: BaseException) -> str:
    """torch's reason a load failed, without its advice to retry with `weights_only=False`:
    that would run whatever code the file holds, and a checkpoint of ours never needs it."""
    text = " ".join(str(err).split())
    reason = text.split("WeightsUnpickler error:", 1)[-1] if "WeightsUnpickler" in text else text
    sentences = [x for x in reason.split(". ") if "weights_only" not in x and "trust" not in x]
    return (". ".join(sentences).strip() or type(err).__name__)[:300]


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint; returns (model in eval mode, checkpoint dict)."""
    ckpt = read_checkpoint(path, device)
    model = build_model(ckpt["model"], ckpt["dims"], ckpt["params"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), ckpt


def predict(
    path: str | Path,
    counts: np.ndarray,
    unit_ids: np.ndarray | None = None,
    batch_size: int = 512,
    session_id: SessionId | None = None,
) -> np.ndarray:
    """Class probabilities (P, C) for raw spike counts (P, T, U) of the checkpoint's units.

    Args:
        path: a `models/<model>/<session>.pt` checkpoint, or a shared
            `models/multisession/<group>.pt` (then `session_id` picks the read-in).
        counts: (P, T, U) spike counts (a numpy array of non-negative whole numbers, as
            integers or floats), binned as in training.
        unit_ids: the integer unit id of each column of `counts` (unique); columns are
            reordered to the checkpoint's units (every one must be present). Required:
            counts of another session with the same number of columns would otherwise be
            scored at chance without a word.
        batch_size: presentations per forward pass.
        session_id: which of the checkpoint's sessions the counts come from. Required,
            for the same reason (unit ids alone may repeat across sessions).

    Returns:
        (P, C) probabilities; column c is the image `ckpt["frames"][c]` (-1 = blank).

    Raises:
        TypeError: counts or unit_ids of the wrong type (a torch tensor, float ids).
        DataError: wrong shapes, NaN, negative or fractional counts, no unit_ids or
            session_id, duplicated or missing unit ids, or a damaged checkpoint (CorruptError).
    """
    if unit_ids is None or session_id is None:
        raise DataError(
            f"predict({path}): pass unit_ids= (the unit id of each column of counts) and "
            "session_id= (the session they were recorded in): counts whose identity cannot be "
            "checked are refused, since another session's counts of the same width would "
            "get confident probabilities at chance"
        )
    model, ckpt = load_checkpoint(path)
    units = _session_units(ckpt, session_id, path)
    want = units["unit_ids"].numpy()
    counts = _checked_counts(path, counts, unit_ids, want, ckpt["n_bins"])
    x = ((counts - units["mean"].numpy()) / units["std"].numpy()).astype(np.float32)
    # a shared decoder takes the index of the session's read-in as well
    session = (
        (ckpt["dims"]["session_ids"].index(session_id_of(units["session_id"])),)
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


def _session_units(ckpt: dict, session_id: SessionId | None, path: str | Path) -> dict:
    """unit_ids, mean and std (and the session id) of the units `predict` feeds the model."""
    sessions = ckpt["sessions"]
    if session_id is None and len(sessions) == 1:
        session_id = session_id_of(next(iter(sessions)))
    if (
        ckpt["model"] == "multisession"
        and session_id is not None
        and str(session_id) not in sessions
    ):
        raise DataError(
            f"{path} has no read-in for session {session_id} (it has read-ins for sessions "
            f"{sorted(int(k) for k in sessions)}): fit one with `{ADAPT_COMMAND} {path} "
            f"data/split/{session_id} --session-id {session_id} --out "
            f"models/adapted/{session_id}.pt`"
        )
    if session_id is None or str(session_id) not in sessions:
        raise DataError(
            f"{path} is a model of sessions {sorted(int(k) for k in sessions)}: "
            f"pass session_id= one of them (got {session_id})"
        )
    return {**sessions[str(session_id)], "session_id": session_id}


def _checked_counts(
    path: str | Path, counts: Any, unit_ids: Any, want: np.ndarray, n_bins: int
) -> np.ndarray:
    """`counts` as the model's (P, T, U) input columns, or one clear error naming the fix."""
    where = f"predict({path})"
    if isinstance(counts, torch.Tensor) or isinstance(unit_ids, torch.Tensor):
        raise TypeError(f"{where}: pass numpy arrays, not torch tensors (use `.cpu().numpy()`)")
    if not isinstance(counts, np.ndarray):
        raise TypeError(f"{where}: counts must be a numpy array, got {type(counts).__name__}")
    if counts.ndim != 3:
        raise DataError(
            f"{where}: counts must be (P, T, U) = (presentations, bins, units), got shape "
            f"{counts.shape}; a single presentation is `counts[None]`"
        )
    if counts.dtype.kind not in "iuf":
        raise TypeError(f"{where}: counts must be integers or floats, got {counts.dtype}")
    if counts.dtype.kind == "f" and not np.isfinite(counts).all():
        raise DataError(f"{where}: counts hold NaN or infinite values; spike counts are finite")
    if counts.dtype.kind != "u" and (counts < 0).any():
        raise DataError(f"{where}: counts hold negative values; spike counts are >= 0")
    if counts.dtype.kind == "f" and (counts != np.round(counts)).any():
        first = counts[counts != np.round(counts)].flat[0]
        raise DataError(
            f"{where}: counts hold values that are not whole numbers (first: {first}); pass "
            "spike counts binned as in training, not rates or normalised values"
        )
    if counts.shape[1] != n_bins:
        raise DataError(
            f"{where}: counts have {counts.shape[1]} bins per presentation, the model was "
            f"trained on {n_bins} (bin the data with bin.timesteps_per_frame: {n_bins})"
        )
    return _columns_by_id(where, counts, unit_ids, want)


def _columns_by_id(where: str, counts: np.ndarray, unit_ids: Any, want: np.ndarray) -> np.ndarray:
    """The columns of `counts` for the units `want`, in that order, found by `unit_ids`."""
    if unit_ids is None:
        if counts.shape[2] != len(want):
            raise DataError(
                f"{where}: counts have {counts.shape[2]} unit columns, the model expects "
                f"{len(want)}; pass unit_ids= to pick and order them"
            )
        return counts
    ids = np.asarray(unit_ids)
    if ids.ndim != 1 or len(ids) != counts.shape[2]:
        raise DataError(
            f"{where}: unit_ids has shape {ids.shape}, counts have {counts.shape[2]} unit "
            "columns: give one id per column"
        )
    if ids.dtype.kind not in "iu":
        raise TypeError(
            f"{where}: unit_ids must be integers, got {ids.dtype} (float ids may be NaN or "
            "rounded; use the int64 ids of the units table)"
        )
    uniq, seen = np.unique(ids, return_counts=True)
    if (seen > 1).any():
        raise DataError(f"{where}: unit_ids repeats ids {uniq[seen > 1][:10].tolist()}")
    pos = {int(u): i for i, u in enumerate(ids)}
    missing = [int(u) for u in want if int(u) not in pos]
    if missing:
        raise DataError(f"{where}: counts lack units {missing[:10]} the model was trained on")
    return counts[:, :, [pos[int(u)] for u in want]]
