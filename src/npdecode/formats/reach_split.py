"""The reaching split folder `data/split/<name>/` of a macaque session (issue 22).

Written by the split stage for a session of the reaching data set, read by its reference,
train and few-shot stages. A reaching session is one continuous recording, so the folder
holds the binned recording once and, per split, which bins a model is scored at (the last
bin of each history window); a model's input is rebuilt from the counts on read, never
stored h times over.

Files:
- `bins.npz`: `counts` (B, U) uint16 spike counts of consecutive bins from the first
  sample; `pos`, `vel`, `acc` (B, 2) float64 per-bin cursor position (mm), velocity
  (mm/s), acceleration (mm/s²), means of the 4 ms samples of each bin; `time` (B,) bin
  starts (s).
- `rows.npz`: `train`, `val`, `test` (N,) int64 sorted bin indices: windows of `history`
  bins ending there lie in one block of that split with no still bin
  (`npdecode.reaching.blocks`).
- `norm.npz`: `mean`, `sd` (U,) float64 of the counts over the training rows' bins, and
  `target_mean`, `target_sd` (2,) of the decoded target there (train-only statistics).
- `units.parquet`: per unit its `unit_id` (`<channel name>/<row>`, row 0 = the channel's
  threshold crossings), `channel` (its name), `channel_index` (into the file's
  `chan_names`), `array` (M1/S1), `row`.
- `meta.json` (checksummed): session, data set, monkey, date, bin width, history, target,
  units mode, shapes, rows per split and the sha256 of each split's rows: `load_reach`
  refuses a folder whose files are not the ones recorded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

FORMAT = "reach-split-1"
SPLITS = ("train", "val", "test")
TARGETS = ("position", "velocity", "acceleration")
BIN_MEMBERS = ("counts", "pos", "vel", "acc", "time")
UNIT_COLUMNS = ("unit_id", "channel", "channel_index", "array", "row")


@dataclass(frozen=True)
class ReachData:
    """One reaching session's split folder in memory (see the module docstring)."""

    session_id: str
    counts: np.ndarray  # (B, U) uint16
    pos: np.ndarray  # (B, 2)
    vel: np.ndarray  # (B, 2)
    acc: np.ndarray  # (B, 2)
    time: np.ndarray  # (B,)
    rows: dict[str, np.ndarray]  # split -> (N,) window-end bins
    mean: np.ndarray  # (U,) train counts mean
    sd: np.ndarray  # (U,) train counts sd (1 where 0)
    target_mean: np.ndarray  # (2,)
    target_sd: np.ndarray  # (2,)
    units: pd.DataFrame
    meta: dict[str, Any]

    @property
    def n_units(self) -> int:
        return int(self.counts.shape[1])

    @property
    def history(self) -> int:
        return int(self.meta["history"])

    @property
    def unit_ids(self) -> np.ndarray:
        """(U,) the unit id (`<channel>/<row>`) of each column of `counts`."""
        return self.units["unit_id"].to_numpy(dtype=str)

    @property
    def width_s(self) -> float:
        return float(self.meta["bin_width_s"])

    @property
    def target_name(self) -> str:
        return str(self.meta["target"])

    def target(self, name: str | None = None) -> np.ndarray:
        """(B, 2) the decoded target (meta's) or the one `name`d."""
        name = name or self.target_name
        return {"position": self.pos, "velocity": self.vel, "acceleration": self.acc}[name]

    def y(self, split: str) -> np.ndarray:
        """(N, 2) float32 target at the rows of `split` (in the file's units)."""
        return self.target()[self.rows[split]].astype(np.float32)

    def windows(self, split: str, rows: np.ndarray | None = None) -> np.ndarray:
        """(N, h, U) float32 z-scored counts of the history windows ending at `rows`
        (default: every row of `split`), with the training split's mean and sd."""
        rows = self.rows[split] if rows is None else rows
        z = ((self.counts - self.mean) / self.sd).astype(np.float32)  # (B, U)
        offsets = np.arange(-self.history + 1, 1)  # (h,)
        return z[rows[:, None] + offsets[None, :]]  # (N, h) bins -> (N, h, U)


def rows_hash(rows: np.ndarray) -> str:
    """sha256 of a split's row indices (int64): which bins a split scores."""
    return hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64).data).hexdigest()


def train_statistics(
    counts: np.ndarray, target: np.ndarray, train_rows: np.ndarray, history: int
) -> dict[str, np.ndarray]:
    """Counts mean/sd (sd 1 where 0) and target mean/sd over the bins of the training
    windows (each bin once)."""
    used = np.zeros(len(counts), dtype=bool)
    for lag in range(history):
        used[train_rows - lag] = True
    c = counts[used].astype(np.float64)
    sd = c.std(axis=0)
    t = target[train_rows]
    return {
        "mean": c.mean(axis=0),
        "sd": np.where(sd > 0, sd, 1.0),
        "target_mean": t.mean(axis=0),
        "target_sd": np.where(t.std(axis=0) > 0, t.std(axis=0), 1.0),
    }


def write_reach_split(
    split_dir: str | Path,
    arrays: dict[str, np.ndarray],
    rows: dict[str, np.ndarray],
    units: pd.DataFrame,
    meta: dict[str, Any],
) -> dict[str, Any]:
    """Write the folder atomically (all or nothing) and return the meta.json written.

    Args:
        arrays: `BIN_MEMBERS` (see the module docstring).
        rows: split -> sorted window-end bins.
        units: `UNIT_COLUMNS`, one row per column of `counts`.
        meta: session_id, dataset, monkey, date, bin_width_s, history, target, units
            mode and anything else to record (shapes and hashes are added here).
    """
    missing = [k for k in BIN_MEMBERS if k not in arrays]
    if missing or sorted(rows) != sorted(SPLITS):
        raise ValueError(f"reach split needs arrays {BIN_MEMBERS} and rows {SPLITS}")
    counts = arrays["counts"]
    if len(units) != counts.shape[1]:
        raise ValueError(f"{len(units)} unit rows for {counts.shape[1]} count columns")
    if meta.get("target") not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {meta.get('target')!r}")
    h = int(meta["history"])
    stats = train_statistics(counts, arrays[_short(meta["target"])], rows["train"], h)
    full = {
        **meta,
        "format": FORMAT,
        "n_bins": int(counts.shape[0]),
        "n_units": int(counts.shape[1]),
        "n": {s: int(rows[s].size) for s in SPLITS},
        "rows_sha256": {s: rows_hash(rows[s]) for s in SPLITS},
    }
    with atomic_path(split_dir) as tmp:
        tmp.mkdir(parents=True)
        save_npz(
            tmp / "bins.npz",
            counts=counts.astype(np.uint16),
            **{k: np.asarray(arrays[k], dtype=np.float64) for k in BIN_MEMBERS if k != "counts"},
        )
        save_npz(tmp / "rows.npz", **{s: np.asarray(rows[s], dtype=np.int64) for s in SPLITS})
        save_npz(tmp / "norm.npz", **stats)
        write_parquet(
            units.loc[:, list(UNIT_COLUMNS)].reset_index(drop=True), tmp / "units.parquet"
        )
        write_json(tmp / "meta.json", full)
    return full


def _short(target: str) -> str:
    return {"position": "pos", "velocity": "vel", "acceleration": "acc"}[target]


def load_reach(split_dir: str | Path, session_id: str) -> ReachData:
    """Read and check a reaching split folder (DataError naming session, file and fault)."""
    d = Path(split_dir)
    fix = f"rebuild it with `dvc repro -f reach_split@{session_id}`"
    for name in ("meta.json", "bins.npz", "rows.npz", "norm.npz", "units.parquet"):
        if not (d / name).exists():
            raise DataError(f"session {session_id}: {d / name} is missing: {fix}")
    meta = read_json(d / "meta.json")
    if meta.get("format") != FORMAT or meta.get("session_id") != session_id:
        raise DataError(
            f"session {session_id}: {d / 'meta.json'} is {meta.get('format')!r} of session "
            f"{meta.get('session_id')!r}, not a {FORMAT} folder of this session: {fix}"
        )
    b = read_npz(d / "bins.npz", BIN_MEMBERS)
    r = read_npz(d / "rows.npz", SPLITS)
    n = read_npz(d / "norm.npz", ("mean", "sd", "target_mean", "target_sd"))
    units = read_parquet(d / "units.parquet")
    shape = (int(meta["n_bins"]), int(meta["n_units"]))
    if b["counts"].shape != shape or len(units) != shape[1]:
        raise DataError(
            f"session {session_id}: {d / 'bins.npz'} holds counts {b['counts'].shape} and "
            f"{len(units)} units, meta.json records {shape}: {fix}"
        )
    for s in SPLITS:
        if rows_hash(r[s]) != meta["rows_sha256"][s]:
            raise DataError(
                f"session {session_id}: {d / 'rows.npz'} holds other {s} rows than meta.json "
                f"records: {fix}"
            )
    return ReachData(
        session_id=session_id,
        counts=b["counts"],
        pos=b["pos"],
        vel=b["vel"],
        acc=b["acc"],
        time=b["time"],
        rows={s: r[s] for s in SPLITS},
        mean=n["mean"],
        sd=n["sd"],
        target_mean=n["target_mean"],
        target_sd=n["target_sd"],
        units=units,
        meta=meta,
    )
