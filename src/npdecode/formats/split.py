"""The split folder `data/split/<id>/`: written by the split stage, read by every model.

Files: `{train,val,test}.npz` (`X` (P, T, U) counts, `y`, `presentation_id`), `norm.npz`
(unit ids, train-split mean and sd), `graph.npz` (the ST-GAT unit graph), `units.parquet`
(unit metadata) and `meta.json` (session, mouse, bins, classes, counts per split).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from npdecode.errors import DataError
from npdecode.formats.files import (
    atomic_path,
    read_json,
    read_npz,
    read_parquet,
    save_npz,
    write_json,
    write_parquet,
)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """One split: X (P, T, U) spike counts, y (P,) class index, presentation ids (P,)."""

    X: np.ndarray
    y: np.ndarray
    presentation_id: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray) -> Split:
        return Split(self.X[index], self.y[index], self.presentation_id[index])


@dataclass(frozen=True)
class SessionData:
    """Train/val/test splits plus everything fitted on train alone.

    `specimen_id` is the mouse (one mouse can have several sessions), when the file says.

    Attributes:
        frames: (C,) the Allen `frame` of each class index (-1 = blank).
        unit_ids: (U,) unit id of each feature column.
        mean, std: (U,) per-unit count mean and sd over training presentations and bins.
        edge_index: (2, E) unit graph (source, target) for ST-GAT, built on train only.
        edge_weight: (E,) weight of each edge.
        units: metadata of the U units (probe, area, positions, quality metrics).
    """

    session_id: int
    train: Split
    val: Split
    test: Split
    frames: np.ndarray
    unit_ids: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    edge_index: np.ndarray
    edge_weight: np.ndarray
    units: pd.DataFrame
    n_bins: int
    bin_width_s: float
    specimen_id: str | None = None

    @property
    def n_classes(self) -> int:
        return len(self.frames)

    @property
    def n_units(self) -> int:
        return len(self.unit_ids)

    def normalise(self, X: np.ndarray) -> np.ndarray:
        """Counts -> float32 z-scores with the training split's statistics."""
        return ((X - self.mean) / self.std).astype(np.float32)


def write_split(out_dir: str | Path, data: SessionData, extra: dict) -> dict:
    """Write `data` as a split folder at `out_dir` (atomically); return its meta.json content.

    `extra` holds what the folder records besides the arrays (see `preprocess.make_split`).
    """
    meta = {
        "session_id": data.session_id,
        "specimen_id": data.specimen_id,
        "n_bins": data.n_bins,
        "bin_width_s": data.bin_width_s,
        "frames": data.frames,
        "n_units": data.n_units,
        "n": {name: len(getattr(data, name)) for name in SPLITS},
        **extra,
    }
    meta["graph"] = {**meta.get("graph", {}), "n_edges": int(data.edge_index.shape[1])}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for name in SPLITS:
            part = getattr(data, name)
            save_npz(tmp / f"{name}.npz", X=part.X, y=part.y, presentation_id=part.presentation_id)
        save_npz(tmp / "norm.npz", unit_ids=data.unit_ids, mean=data.mean, std=data.std)
        save_npz(tmp / "graph.npz", edge_index=data.edge_index, edge_weight=data.edge_weight)
        write_parquet(data.units, tmp / "units.parquet", compression="snappy")
        write_json(tmp / "meta.json", meta)
    return meta


def load_session(split_dir: str | Path, session_id: int) -> SessionData:
    """Read data/split/<id>/ written by the split stage."""
    split_dir = Path(split_dir)
    if not (split_dir / "meta.json").exists():
        raise DataError(f"session {session_id}: {split_dir} has no meta.json (run the split stage)")
    meta = read_json(split_dir / "meta.json")
    if int(meta["session_id"]) != int(session_id):
        raise DataError(
            f"{split_dir}/meta.json is for session {meta['session_id']}, not {session_id}"
        )
    splits = {}
    for name in SPLITS:
        z = read_npz(split_dir / f"{name}.npz", ("X", "y", "presentation_id"))
        splits[name] = Split(z["X"], z["y"], z["presentation_id"])
    norm = read_npz(split_dir / "norm.npz", ("unit_ids", "mean", "std"))
    graph = read_npz(split_dir / "graph.npz", ("edge_index", "edge_weight"))
    return SessionData(
        session_id=int(session_id),
        **splits,
        frames=np.asarray(meta["frames"], dtype=np.int64),
        unit_ids=norm["unit_ids"],
        mean=norm["mean"],
        std=norm["std"],
        edge_index=graph["edge_index"],
        edge_weight=graph["edge_weight"],
        units=read_parquet(split_dir / "units.parquet"),
        n_bins=int(meta["n_bins"]),
        bin_width_s=float(meta["bin_width_s"]),
        specimen_id=meta.get("specimen_id"),
    )
