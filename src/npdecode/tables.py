"""The binned table: one row per presentation × bin, one column per unit id.

`to_table` and `to_tensor` convert between it and a (P, T, U) count array. The
conversion back is keyed by presentation id and checked, never positional: the old
pipeline's `[:num_samples * seq_len]` truncation shifted labels when rows went missing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from npdecode.errors import DataError

META_COLUMNS = ("presentation_id", "frame", "bin", "start_time")


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
