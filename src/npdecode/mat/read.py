"""Read an O'Doherty & Sabes reaching `.mat` (MATLAB v7.3 / HDF5) and check it.

Layout (what h5py sees; MATLAB stores arrays transposed): `t` (1, T) s on a 4 ms grid,
`cursor_pos` (2, T), `target_pos` (2, T), `chan_names` (1, C) references to uint16 char
arrays ("M1 001", "S1 017"), `spikes` (U+1, C) references: row 0 the unsorted threshold
crossings of each channel, rows 1.. sorted units, an empty placeholder where a channel has
no such unit. `npdecode.mat.write` writes this layout.

Every bad input raises `DataError` in one line naming the session, the file and what is
wrong. Sizes a dataset claims are checked against the file's size before anything is
allocated, so a damaged header cannot ask for gigabytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import h5py
import numpy as np

from npdecode.errors import DataError

SAMPLE_S = 0.004
GRID_TOLERANCE_S = 1e-6
REQUIRED = ("t", "cursor_pos", "target_pos", "chan_names", "spikes")
CHANNEL_NAME = re.compile(r"(M1|S1) (\d{3})")
# Compressed datasets may claim more bytes than the file holds, but not this many times more.
MAX_COMPRESSION = 1000
Units = Literal["sorted", "crossings"]


@dataclass(frozen=True)
class Reaching:
    """A session as the decoder needs it.

    Attributes:
        t: (T,) sample times, s, a 4 ms grid.
        cursor_pos: (T, 2) cursor x, y (the file's units, mm).
        target_pos: (T, 2) target x, y.
        chan_names: (C,) channel names.
        spike_times: U sorted spike trains (s): sorted units, or one merged train of all
            threshold crossings per channel (see `read_mat`).
        unit_channel: (U,) index into `chan_names` of each train.
        unit_row: (U,) row of `spikes` a sorted unit came from (1..); 0 for crossings.
        unobserved: (G, 2) [start, stop) s not recorded (empty for a `.mat`: one
            continuous recording; the NLB NWB's gaps, `npdecode.nwb.nlb`), whose bins
            `npdecode.reaching.prepare` excludes.
    """

    t: np.ndarray
    cursor_pos: np.ndarray
    target_pos: np.ndarray
    chan_names: list[str]
    spike_times: list[np.ndarray]
    unit_channel: np.ndarray
    unit_row: np.ndarray
    unobserved: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))


class _Bad(Exception):
    """A check failed; `read_mat` adds the session and the file."""


def read_mat(path: str | Path, session: str, units: Units = "sorted") -> Reaching:
    """Read and check one session's `.mat`.

    Args:
        path: the `.mat` file.
        session: its name (`indy_20160407_02`), for messages.
        units: "sorted": one train per sorted unit (rows 1.. of `spikes`); "crossings":
            one train per channel holding every threshold crossing of that channel (the
            unsorted row merged with its sorted units, as NeuroBench's unsorted mode does).

    Raises:
        DataError: a missing array, a `t` off the 4 ms grid, NaN in `cursor_pos`, a channel
            name that does not parse, spikes outside `t` or unsorted/duplicated, a truncated
            or non-HDF5 file, a dataset claiming more bytes than the file can hold.
    """
    path = Path(path)
    if units not in ("sorted", "crossings"):
        raise ValueError(f"units must be 'sorted' or 'crossings', got {units!r}")
    try:
        size = path.stat().st_size
        with h5py.File(path, "r") as f:
            return _read(f, size, units)
    except _Bad as err:
        raise DataError(f"session {session}: {path}: {err}") from None
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise DataError(
            f"session {session}: {path}: truncated or not a MATLAB v7.3 (HDF5) file ({err})"
        ) from err


def _read(f: h5py.File, file_bytes: int, units: Units) -> Reaching:
    missing = [k for k in REQUIRED if k not in f]
    if missing:
        raise _Bad(f"missing array(s) {', '.join(missing)}")
    t = _array(f["t"], file_bytes, "t")
    if t.ndim != 2 or t.shape[0] != 1 or t.shape[1] < 2:
        raise _Bad(f"t has shape {t.shape}, expected (1, T) with T >= 2")
    t = t[0]
    step = np.diff(t)
    if not np.all(np.abs(step - SAMPLE_S) <= GRID_TOLERANCE_S):
        k = int(np.argmax(np.abs(step - SAMPLE_S)))
        raise _Bad(f"t is not a 4 ms grid: step {k} is {step[k]!r} s")
    cursor = _kinematic(f, "cursor_pos", file_bytes, t.size)
    target = _kinematic(f, "target_pos", file_bytes, t.size)
    names = _chan_names(f, file_bytes)
    refs = _array(f["spikes"], file_bytes, "spikes")
    if refs.ndim != 2 or refs.shape[1] != len(names) or refs.dtype != h5py.ref_dtype:
        raise _Bad(f"spikes has shape {refs.shape}, expected (U+1, {len(names)}) references")
    lo, hi = t[0], t[-1] + SAMPLE_S
    rows = [[_train(f, r, file_bytes, (j, i), lo, hi) for i, r in enumerate(row)]
            for j, row in enumerate(refs)]  # fmt: skip
    trains, channel, row_of = _select(rows, units)
    return Reaching(t, cursor.T, target.T, names, trains, channel, row_of)


def _select(
    rows: list[list[np.ndarray | None]], units: Units
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Sorted units in (row, channel) order, or each channel's merged crossings."""
    trains: list[np.ndarray] = []
    channel: list[int] = []
    row_of: list[int] = []
    if units == "sorted":
        for j, row in enumerate(rows[1:], start=1):
            for i, train in enumerate(row):
                if train is not None:
                    trains.append(train)
                    channel.append(i)
                    row_of.append(j)
    else:
        for i in range(len(rows[0])):
            parts = [a for row in rows if (a := row[i]) is not None]
            trains.append(np.sort(np.concatenate(parts)) if parts else np.empty(0))
            channel.append(i)
            row_of.append(0)
    return trains, np.array(channel, dtype=np.int64), np.array(row_of, dtype=np.int64)


def _array(ds: h5py.Dataset | h5py.Group, file_bytes: int, what: str) -> np.ndarray:
    """The dataset's values, after checking the bytes it claims fit in the file."""
    if not isinstance(ds, h5py.Dataset):
        raise _Bad(f"{what} is a group, expected an array")
    claimed = int(np.prod(ds.shape, dtype=np.float64)) * ds.dtype.itemsize
    limit = file_bytes * (MAX_COMPRESSION if ds.compression else 1)
    if claimed > limit:
        raise _Bad(f"{what} claims {claimed} bytes in a {file_bytes}-byte file (damaged header)")
    return ds[()]


def _kinematic(f: h5py.File, name: str, file_bytes: int, n: int) -> np.ndarray:
    a = _array(f[name], file_bytes, name)
    if a.shape != (2, n):
        raise _Bad(f"{name} has shape {a.shape}, expected (2, {n}) like t")
    bad = ~np.isfinite(a)
    if bad.any():
        k = int(np.flatnonzero(bad.any(axis=0))[0])
        raise _Bad(f"{name} has NaN or infinite values (first at sample {k})")
    return a.astype(np.float64)


def _chan_names(f: h5py.File, file_bytes: int) -> list[str]:
    refs = _array(f["chan_names"], file_bytes, "chan_names").reshape(-1)
    names = []
    for k, ref in enumerate(refs):
        codes = _array(f[ref], file_bytes, f"chan_names[{k}]").reshape(-1)
        name = "".join(chr(int(c)) for c in codes)
        if not CHANNEL_NAME.fullmatch(name):
            raise _Bad(f"channel name {k} {name!r} does not parse as 'M1 001' or 'S1 017'")
        names.append(name)
    return names


def _train(
    f: h5py.File, ref: h5py.Reference, file_bytes: int, at: tuple[int, int], lo: float, hi: float
) -> np.ndarray | None:
    """One `spikes` entry: a checked (n,) float64 train, or None for a placeholder."""
    where = f"spikes[{at[0]}, {at[1]}]"
    ds = f[ref]
    if ds.attrs.get("MATLAB_empty", 0) or ds.ndim < 2:
        return None
    a = _array(ds, file_bytes, where)
    if a.shape[0] != 1:
        raise _Bad(f"{where} has shape {a.shape}, expected (1, n) spike times")
    train = a[0].astype(np.float64)
    if not np.isfinite(train).all():
        raise _Bad(f"{where} has NaN or infinite spike times")
    if train.size > 1 and not np.all(np.diff(train) > 0):
        k = int(np.flatnonzero(np.diff(train) <= 0)[0])
        raise _Bad(f"{where} spike times are unsorted or duplicated (at spike {k + 1})")
    if train.size and not (train[0] >= lo and train[-1] < hi):
        raise _Bad(f"{where} has spike times outside t: [{train[0]}, {train[-1]}] s, "
                   f"recording [{lo}, {hi}) s")  # fmt: skip
    return train


def kinematics(t: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Velocity and acceleration of (T, 2) positions sampled at times `t` (T,).

    Second-order central differences inside, first-order at the ends (`np.gradient`, as
    brainsets differentiates `cursor_pos`); units per s and per s^2.
    """
    vel = np.gradient(pos, t, axis=0)
    acc = np.gradient(vel, t, axis=0)
    return vel, acc
