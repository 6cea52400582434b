"""Write a reaching session in the layout of the O'Doherty & Sabes `.mat` files (Zenodo 583331).

MATLAB v7.3: an HDF5 file behind a 512-byte MATLAB header (the userblock). MATLAB stores
an (r, c) array as HDF5 (c, r), so h5py sees `t` as (1, T), `cursor_pos` as (2, T), and a
cell array `spikes` of MATLAB size (C, U+1) as (U+1, C) object references into `#refs#`.
An empty cell is MATLAB's empty-array placeholder: a (2,) uint64 dataset holding the
MATLAB shape [0, 0] with the attribute `MATLAB_empty = 1` (readers see a scalar and skip it).
Channel names are uint16 char arrays (`MATLAB_class = "char"`), one per channel.

Waveforms (`wf`, (48, n) per unit) are written as placeholders that cost no bytes: an
unwritten HDF5 dataset whose fill value is the unit's template amplitude, so a reader
gets one constant 48-sample waveform per spike (the twin does not model waveforms).
Spike trains, cursor and times are written exactly; `npdecode.mat.read` reads them back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from npdecode.formats.files import atomic_path

USERBLOCK_BYTES = 512
WAVEFORM_SAMPLES = 48


@dataclass(frozen=True)
class MatSession:
    """One session's arrays in our (time-major) orientation; the writer transposes them.

    Attributes:
        t: (T,) sample times, s, on a 4 ms grid.
        cursor_pos: (T, 2) cursor x, y.
        finger_pos: (T, 3) fingertip position (z, -x, -y), cm.
        target_pos: (T, 2) current target x, y.
        chan_names: (C,) channel names, e.g. "M1 001".
        spikes: (U + 1) rows of C entries: row 0 the unsorted threshold crossings of each
            channel, rows 1.. sorted units; an entry is a sorted (n,) float64 array of spike
            times (s) or None where the channel has no such unit.
        created: the date written in the MATLAB header (e.g. "Thu Apr  7 12:00:00 2016").
    """

    t: np.ndarray
    cursor_pos: np.ndarray
    finger_pos: np.ndarray
    target_pos: np.ndarray
    chan_names: Sequence[str]
    spikes: Sequence[Sequence[np.ndarray | None]]
    created: str = "Thu Jan  1 00:00:00 1970"


def matlab_header(created: str) -> bytes:
    """The 512-byte userblock MATLAB writes before a v7.3 file's HDF5 data."""
    text = f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: {created} HDF5 schema 1.00 ."
    head = text.encode("ascii").ljust(116, b" ")[:116]
    # 8-byte subsystem offset (unused), version 0x0200, endian indicator "IM" (little endian).
    head += b"\x00" * 8 + b"\x00\x02" + b"IM"
    return head.ljust(USERBLOCK_BYTES, b"\x00")


def write_mat(path: str | Path, s: MatSession) -> None:
    """Write `s` to `path` atomically (a failed write leaves nothing at `path`)."""
    with atomic_path(path) as tmp:
        _write(tmp, s)


def _write(path: Path, s: MatSession) -> None:
    n_rows, n_chan = len(s.spikes), len(s.chan_names)
    if any(len(row) != n_chan for row in s.spikes):
        raise ValueError(f"every spikes row needs {n_chan} entries (one per channel)")
    with h5py.File(path, "w", userblock_size=USERBLOCK_BYTES, libver="earliest") as f:
        refs = f.create_group("#refs#")
        counter = iter(range(1 << 30))

        def new_name() -> str:
            return f"r{next(counter):07d}"

        # Shapes below are what h5py (and every reader of the real files) sees.
        _double(f, "t", s.t[None, :])  # (T,) -> (1, T)
        _double(f, "cursor_pos", np.asarray(s.cursor_pos).T)  # (T, 2) -> (2, T)
        _double(f, "finger_pos", np.asarray(s.finger_pos).T)  # (T, 3) -> (3, T)
        _double(f, "target_pos", np.asarray(s.target_pos).T)  # (T, 2) -> (2, T)

        names = []
        for name in s.chan_names:
            codes = np.frombuffer(name.encode("ascii"), np.uint8).astype(np.uint16)
            # (len,) -> (len, 1): brainsets joins `chr` over each row of the squeezed stack
            ds = refs.create_dataset(new_name(), data=codes[:, None], track_times=False)
            ds.attrs["MATLAB_class"] = np.bytes_("char")
            ds.attrs["MATLAB_int_decode"] = np.int32(2)
            names.append(ds.ref)
        _cell(f, "chan_names", np.array([names], dtype=h5py.ref_dtype))  # (1, C)

        spike_refs = np.empty((n_rows, n_chan), dtype=h5py.ref_dtype)
        wf_refs = np.empty((n_rows, n_chan), dtype=h5py.ref_dtype)
        for j, row in enumerate(s.spikes):
            for i, train in enumerate(row):
                if train is None:
                    spike_refs[j, i] = _empty(refs, new_name()).ref
                    wf_refs[j, i] = _empty(refs, new_name()).ref
                    continue
                train = np.asarray(train, dtype=np.float64)
                ds = refs.create_dataset(new_name(), data=train[None, :], track_times=False)
                ds.attrs["MATLAB_class"] = np.bytes_("double")
                spike_refs[j, i] = ds.ref
                wf = refs.create_dataset(
                    new_name(),
                    shape=(WAVEFORM_SAMPLES, train.size),
                    dtype=np.float64,
                    fillvalue=-40.0 - 10.0 * j,  # a placeholder amplitude, µV
                    track_times=False,
                )
                wf.attrs["MATLAB_class"] = np.bytes_("double")
                wf_refs[j, i] = wf.ref
        _cell(f, "spikes", spike_refs)  # (U + 1, C)
        _cell(f, "wf", wf_refs)  # (U + 1, C)
    with open(path, "r+b") as fh:
        fh.write(matlab_header(s.created))


def _double(f: h5py.File, name: str, data: np.ndarray) -> None:
    ds = f.create_dataset(name, data=np.asarray(data, dtype=np.float64), track_times=False)
    ds.attrs["MATLAB_class"] = np.bytes_("double")


def _cell(f: h5py.File, name: str, refs: np.ndarray) -> None:
    ds = f.create_dataset(name, data=refs, track_times=False)
    ds.attrs["MATLAB_class"] = np.bytes_("cell")


def _empty(group: h5py.Group, name: str) -> h5py.Dataset:
    """MATLAB's empty array: its shape [0, 0] as data, flagged `MATLAB_empty`."""
    ds = group.create_dataset(name, data=np.zeros(2, dtype=np.uint64), track_times=False)
    ds.attrs["MATLAB_class"] = np.bytes_("double")
    ds.attrs["MATLAB_empty"] = np.uint8(1)
    return ds
