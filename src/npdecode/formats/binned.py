"""The binned and clean count tables, and the unit / presentation tables beside them.

A count table has one row per presentation × bin and one column per unit id, after the
META_COLUMNS. `to_table` and `to_tensor` convert between it and a (P, T, U) count array.
The conversion back is keyed by presentation id and checked, never positional: the old
pipeline's `[:num_samples * seq_len]` truncation shifted labels when rows went missing.
Files: `data/binned/<id>.parquet` and `data/clean/<id>.parquet` (count tables),
`<id>.units.parquet` and `<id>.presentations.parquet` (plain tables).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from npdecode.errors import DataError
from npdecode.formats.files import write_parquet

META_COLUMNS = ("presentation_id", "frame", "bin", "start_time")
# For the wide count tables (thousands of uint16 unit columns): per-column dictionary
# encoding, statistics and zstd cost more time than the space they save; lz4 writes twice
# and reads 2.5x as fast (files ~4x larger, still far smaller than the session's NWB).
WIDE: dict[str, object] = {"compression": "lz4", "use_dictionary": False, "write_statistics": False}


def write_counts(path: str | Path, table: pd.DataFrame) -> None:
    """Write a count table (see `to_table`) atomically."""
    write_parquet(table, path, **WIDE)


def read_counts(path: str | Path) -> pd.DataFrame:
    """A count table written by `write_counts`."""
    return pd.read_parquet(path)


def write_meta(path: str | Path, table: pd.DataFrame) -> None:
    """Write a units or presentations table atomically."""
    write_parquet(table, path)


def read_meta(path: str | Path) -> pd.DataFrame:
    """A units or presentations table written by `write_meta`."""
    return pd.read_parquet(path)


def to_table(counts: np.ndarray, presentations: pd.DataFrame, unit_ids: np.ndarray) -> pd.DataFrame:
    """(P, T, U) counts -> one row per presentation × bin, one column per unit id."""
    n_pres, n_bins, n_units = counts.shape
    width = (presentations["stop_time"] - presentations["start_time"]).to_numpy() / n_bins
    start = presentations["start_time"].to_numpy()
    meta = {
        "presentation_id": np.repeat(presentations["presentation_id"].to_numpy(), n_bins),
        "frame": np.repeat(presentations["frame"].to_numpy(), n_bins),
        "bin": np.tile(np.arange(n_bins, dtype=np.int16), n_pres),
        "start_time": (start[:, None] + width[:, None] * np.arange(n_bins)).ravel(),
    }
    flat = counts.reshape(n_pres * n_bins, n_units)  # (P, T, U) -> (P*T, U), a view
    # one 2-D block over `counts` (no copy); metadata columns are inserted beside it, not
    # concatenated, so the table costs no second copy of the counts
    table = pd.DataFrame(flat, columns=[str(u) for u in unit_ids], copy=False)
    for i, (name, values) in enumerate(meta.items()):
        table.insert(i, name, values)
    return table


def unit_columns(table: pd.DataFrame) -> list[str]:
    """The unit-count columns of a binned table (every column but the metadata)."""
    return [c for c in table.columns if c not in META_COLUMNS]


def to_tensor(
    table: pd.DataFrame, n_bins: int, session_id: int, source: str
) -> tuple[np.ndarray, pd.DataFrame]:
    """Binned table -> ((P, T, U) counts, per-presentation table), checked by presentation id.

    Rows are grouped by presentation id, never by position: a presentation with a
    missing or duplicated bin raises DataError naming it, instead of shifting labels.
    """
    table = table.sort_values(["presentation_id", "bin"], kind="stable")
    ids = table["presentation_id"].to_numpy()
    uniq, first, n_rows = np.unique(ids, return_index=True, return_counts=True)
    bins = table["bin"].to_numpy()
    bad = n_rows != n_bins
    if not bad.any():
        bad = (bins.reshape(-1, n_bins) != np.arange(n_bins)).any(axis=1)
    if bad.any():
        raise DataError(
            f"session {session_id}: {source}: presentations {uniq[bad][:10].tolist()} "
            f"do not have exactly bins 0..{n_bins - 1} ({int(bad.sum())} presentations affected)"
        )
    cols = unit_columns(table)
    counts = table[cols].to_numpy().reshape(len(uniq), n_bins, len(cols))  # (P*T, U) -> (P, T, U)
    frames = table["frame"].to_numpy().reshape(len(uniq), n_bins)
    mixed = (frames != frames[:, :1]).any(axis=1) & ~np.isnan(frames).all(axis=1)
    if mixed.any():
        raise DataError(
            f"session {session_id}: {source}: presentations {uniq[mixed][:10].tolist()} mix frames across bins"
        )
    per_pres = table.iloc[first][["presentation_id", "frame", "start_time"]].reset_index(drop=True)
    return counts, per_pres
