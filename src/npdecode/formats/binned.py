"""The binned and clean spike counts, and the unit / presentation tables beside them.

A count file is one uncompressed .npz holding `by_unit` (U, P, T) (unsigned integer
counts, unit-major: each unit's counts one contiguous block, as the binning kernel lays
them out), `presentation_id` (P,) and `unit_id` (U,). It is written straight from the
kernel's memory, with zip's CRC-32 (checked on read), instead of a table with one column
per unit, whose write cost more than binning itself. Rows and columns are keyed by id, and
`read_counts` checks the ids: a consumer aligns presentations and units by id, never by
position (the old pipeline's `[:num_samples * seq_len]` truncation shifted labels).
Files: `data/binned/<id>.counts.npz` and `data/clean/<id>.counts.npz` (counts),
`data/binned/<id>.units.parquet` and `<id>.presentations.parquet` (plain tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from npdecode.errors import DataError
from npdecode.formats.files import read_npz, read_parquet, write_npz, write_parquet
from npdecode.params import SessionId


@dataclass(frozen=True)
class Counts:
    """Spike counts of P presentations × T bins × U units, with the ids of both axes.

    Attributes:
        by_unit: (U, P, T) unsigned integer counts, unit-major (as stored).
        presentation_id: (P,) int64, unique.
        unit_id: (U,) int64, unique.
    """

    by_unit: np.ndarray
    presentation_id: np.ndarray
    unit_id: np.ndarray

    @classmethod
    def from_counts(
        cls, counts: np.ndarray, presentation_id: np.ndarray, unit_id: np.ndarray
    ) -> Counts:
        """From (P, T, U) counts (a view: no copy)."""
        return cls(counts.transpose(2, 0, 1), presentation_id, unit_id)  # (P, T, U) -> (U, P, T)

    @property
    def counts(self) -> np.ndarray:
        """(P, T, U) counts, a view of `by_unit`."""
        return self.by_unit.transpose(1, 2, 0)  # (U, P, T) -> (P, T, U)


def check_counts(c: Counts, source: str) -> Counts:
    """`c` if its shapes, dtypes and ids are consistent, else DataError naming `source`."""
    if c.by_unit.ndim != 3 or c.by_unit.dtype.kind != "u":
        raise DataError(
            f"{source}: counts must be a (U, P, T) unsigned integer array, "
            f"got {c.by_unit.dtype} of shape {c.by_unit.shape}"
        )
    for name, ids, n in (
        ("presentation_id", c.presentation_id, c.by_unit.shape[1]),
        ("unit_id", c.unit_id, c.by_unit.shape[0]),
    ):
        if ids.ndim != 1 or len(ids) != n or ids.dtype.kind not in "iu":
            raise DataError(
                f"{source}: {name} must be {n} integers (one per count row), got {ids.dtype} "
                f"of shape {ids.shape}"
            )
        uniq, n_seen = np.unique(ids, return_counts=True)
        if (n_seen > 1).any():
            raise DataError(f"{source}: duplicated {name} {uniq[n_seen > 1][:10].tolist()}")
    return c


def write_counts(path: str | Path, c: Counts) -> None:
    """Write counts atomically (uncompressed npz, unit by unit from memory, CRC-32 per member)."""
    check_counts(c, str(path))
    write_npz(
        path,
        by_unit=c.by_unit,
        presentation_id=c.presentation_id.astype(np.int64),
        unit_id=c.unit_id.astype(np.int64),
    )


def read_counts(path: str | Path, session_id: SessionId) -> Counts:
    """Counts written by `write_counts`, checked (CRC and ids)."""
    z = read_npz(path, ("by_unit", "presentation_id", "unit_id"))
    c = Counts(z["by_unit"], z["presentation_id"], z["unit_id"])
    return check_counts(c, f"session {session_id}: {path}")


def write_meta(path: str | Path, table: pd.DataFrame) -> None:
    """Write a units or presentations table atomically."""
    write_parquet(table, path)


def read_meta(path: str | Path) -> pd.DataFrame:
    """A units or presentations table written by `write_meta` (page checksums verified)."""
    return read_parquet(path)


def per_presentation(
    c: Counts, presentations: pd.DataFrame, session_id: SessionId, source: str
) -> tuple[np.ndarray, pd.DataFrame]:
    """(counts (P, T, U), presentation table) both ordered by presentation id, matched by id.

    Every presentation of `c` must appear exactly once in `presentations`; the returned
    table has its `presentation_id`, `frame` and `start_time`, row p for `counts[p]`.
    """
    order = np.argsort(c.presentation_id, kind="stable")
    ids = c.presentation_id[order]
    table = presentations.drop_duplicates("presentation_id", keep=False).set_index(
        "presentation_id"
    )
    dup = presentations["presentation_id"].duplicated(keep=False)
    missing = ~np.isin(ids, table.index.to_numpy())
    if dup.any() or missing.any():
        bad = np.union1d(presentations.loc[dup, "presentation_id"].to_numpy(), ids[missing])
        raise DataError(
            f"session {session_id}: {source}: presentations {bad[:10].tolist()} are missing "
            "from, or duplicated in, the presentations table"
        )
    rows = table.loc[ids, ["frame", "start_time"]].reset_index()
    in_order = bool((np.diff(c.presentation_id) > 0).all())
    return (c.counts if in_order else c.counts[order]), rows
