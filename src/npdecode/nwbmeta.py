"""Check an Allen session NWB file and read its metadata tables, with h5py alone.

Used on both sides of the fetch stage: in the main environment and in the separate
AllenSDK environment (numpy < 2, pandas 1.5, pynwb 2.8), so this module imports nothing
beyond h5py, numpy and pandas (no pynwb, no `npdecode.nwb`). It reads only small
datasets (ids, indexes, metadata columns): checking a 3 GB session takes well under a
second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from npdecode.errors import DataError

ELECTRODES = "general/extracellular_ephys/electrodes"
# Stimuli each Allen session type shows (AllenSDK's stimulus tables): lets the fetch stage
# refuse a session without the wanted stimulus before downloading 2-3 GB.
STIMULI_BY_SESSION_TYPE = {
    "brain_observatory_1.1": frozenset(
        {
            "spontaneous",
            "gabors",
            "flashes",
            "drifting_gratings",
            "natural_movie_three",
            "natural_movie_one",
            "static_gratings",
            "natural_scenes",
            "invalid_presentation",
        }
    ),
    "functional_connectivity": frozenset(
        {
            "spontaneous",
            "gabors",
            "flashes",
            "drifting_gratings_contrast",
            "drifting_gratings_75_repeats",
            "natural_movie_one_more_repeats",
            "natural_movie_one_shuffled",
            "dot_motion",
            "invalid_presentation",
        }
    ),
}


@dataclass(frozen=True)
class NwbSummary:
    """What `verify_session_nwb` found in a file that passed every check."""

    session_id: int
    path: str
    size_bytes: int
    n_units: int
    n_spikes: int
    n_channels: int
    n_presentations: int
    probe_ids: tuple[int, ...]
    session_type: str


def text(value: object) -> str:
    """An HDF5 string (bytes, str or a 0-d array of either) as str."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.shape == ():
        return text(value[()])
    return str(value)


def open_nwb(path: str | Path, session_id: int) -> h5py.File:
    """Open `path` read-only; a missing, truncated or non-HDF5 file is a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"session {session_id}: NWB file {path} does not exist (run the fetch stage)"
        )
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise DataError(
            f"session {session_id}: {path} is not a readable HDF5/NWB file "
            f"(truncated or corrupt download?): {err}"
        ) from err


def read_identifier(path: str | Path, session_id: int) -> str:
    """The NWB `identifier` (Allen: the session id as a string); '' if the file has none."""
    with open_nwb(path, session_id) as f:
        return text(f["identifier"][()]) if "identifier" in f else ""


def read_session_type(path: str | Path, session_id: int) -> str:
    """The session type Allen stores as `stimulus_notes` (e.g. brain_observatory_1.1), or ''."""
    with open_nwb(path, session_id) as f:
        notes = f.get("general/stimulus")
        return text(notes[()]) if isinstance(notes, h5py.Dataset) else ""


def verify_session_nwb(
    path: str | Path,
    session_id: int,
    stimulus: str = "natural_scenes",
    expected_size: int | None = None,
) -> NwbSummary:
    """Check that `path` is a complete Allen session NWB for `session_id`; raise DataError if not.

    Checks, in order: the size (when `expected_size` is known), that HDF5 opens it (a
    truncated file fails here: HDF5 compares the stored end-of-file address with the real
    size), that its `identifier` is the session id (files must never be mixed up), the
    units table with ragged `spike_times` whose index matches its data, the electrodes
    table, and a non-empty `<stimulus>_presentations` table with start/stop times and
    `frame`. The last spike time is read, so the end of the spike data is readable too.
    """
    path = Path(path)
    where = f"session {session_id}: {path}"
    size = path.stat().st_size if path.is_file() else 0
    if expected_size is not None and path.is_file() and size != expected_size:
        raise DataError(f"{where} has {size} bytes, expected {expected_size} (truncated download?)")
    with open_nwb(path, session_id) as f:
        try:
            summary = _check_open_file(f, where, session_id, stimulus)
        except DataError:
            raise
        except (OSError, KeyError, ValueError, IndexError) as err:
            raise DataError(f"{where} is unreadable inside (corrupt file?): {err}") from err
    return NwbSummary(path=str(path), size_bytes=size, **summary)


def _check_open_file(f: h5py.File, where: str, session_id: int, stimulus: str) -> dict:
    identifier = text(f["identifier"][()]) if "identifier" in f else ""
    if identifier != str(session_id):
        raise DataError(
            f"{where} holds session {identifier!r}, not {session_id}: refusing a file whose "
            "NWB identifier is another session (mixed-up files?)"
        )
    n_units, n_spikes = _check_units(_group(f, "units", where), where)
    electrodes = _group(f, ELECTRODES, where)
    if "id" not in electrodes or electrodes["id"].shape[0] == 0:
        raise DataError(f"{where}: the electrodes table is empty")
    notes = f.get("general/stimulus")
    return {
        "session_id": session_id,
        "n_units": n_units,
        "n_spikes": n_spikes,
        "n_channels": int(electrodes["id"].shape[0]),
        "n_presentations": _check_presentations(f, where, stimulus),
        "probe_ids": tuple(sorted(_probe_groups(f))),
        "session_type": text(notes[()]) if isinstance(notes, h5py.Dataset) else "",
    }


def _check_units(units: h5py.Group, where: str) -> tuple[int, int]:
    """(units, spikes) of a units table with a consistent ragged `spike_times` column."""
    for key in ("id", "spike_times", "spike_times_index"):
        if key not in units:
            raise DataError(f"{where}: the units table has no '{key}'")
    n_units = units["id"].shape[0]
    if n_units == 0:
        raise DataError(f"{where}: the units table is empty")
    ends = units["spike_times_index"][()]
    n_spikes = units["spike_times"].shape[0]
    if len(ends) != n_units or int(ends[-1]) != n_spikes:
        raise DataError(f"{where}: units spike_times_index does not match its {n_spikes} spikes")
    if n_spikes and not np.isfinite(units["spike_times"][n_spikes - 1]):
        raise DataError(f"{where}: the last spike time is not a finite number")
    return int(n_units), int(n_spikes)


def presentations_group(f: h5py.File, where: str, stimulus: str) -> h5py.Group:
    """The `intervals/<stimulus>_presentations` group; a DataError listing the file's stimuli."""
    key = f"intervals/{stimulus}_presentations"
    if key not in f:
        have = sorted(k.removesuffix("_presentations") for k in f.get("intervals", {}))
        raise DataError(
            f"{where} has no {stimulus} presentations "
            f"(stimuli in this file: {', '.join(have) or 'none'})"
        )
    return f[key]


def _check_presentations(f: h5py.File, where: str, stimulus: str) -> int:
    """Number of rows of a non-empty `<stimulus>_presentations` table with the needed columns."""
    key = f"intervals/{stimulus}_presentations"
    table = presentations_group(f, where, stimulus)
    for col in ("start_time", "stop_time", "frame"):
        if col not in table:
            raise DataError(f"{where}: '{key}' has no '{col}' column")
    n = table["start_time"].shape[0]
    if n == 0:
        raise DataError(f"{where}: '{key}' is empty")
    return int(n)


def _group(f: h5py.File, key: str, where: str) -> h5py.Group:
    if key not in f:
        raise DataError(f"{where} has no '{key}' (not an Allen ecephys NWB?)")
    return f[key]


def _probe_groups(f: h5py.File) -> dict[int, h5py.Group]:
    """Electrode groups (one per probe) by probe id."""
    groups = f.get("general/extracellular_ephys", {})
    return {
        int(g.attrs["probe_id"]): g
        for g in groups.values()
        if isinstance(g, h5py.Group) and "probe_id" in g.attrs
    }


# --- metadata tables ------------------------------------------------------------------


def _columns(group: h5py.Group) -> dict[str, np.ndarray]:
    """The plain 1-D columns of a DynamicTable, `id` first: no ragged data, indexes or refs."""
    out = {"id": group["id"][()]}
    for name, ds in group.items():
        ragged = f"{name}_index" in group
        skip = name == "id" or ragged or name.endswith("_index")
        if skip or not isinstance(ds, h5py.Dataset) or ds.ndim != 1:
            continue
        if ds.dtype.kind == "O" and h5py.check_dtype(ref=ds.dtype) is not None:
            continue  # object references (electrodes `group`)
        values = ds[()]
        if values.dtype.kind in "SO":
            values = np.array([text(v) for v in values], dtype=object)
        out[name] = values
    return out


def _value(group: h5py.Group | None, name: str) -> object:
    """A scalar stored as a dataset or an attribute of `group`; None when absent."""
    if group is None:
        return None
    if name in group and isinstance(group[name], h5py.Dataset):
        return text(group[name][()]) if group[name].dtype.kind in "SO" else group[name][()]
    if name in group.attrs:
        value = group.attrs[name]
        return text(value) if isinstance(value, bytes | str) else value
    return None


def metadata_tables(path: str | Path, session_id: int) -> dict[str, pd.DataFrame]:
    """sessions/probes/channels/units tables from the file, in the columns of Allen's cache.

    For NWB files that arrive without AllenSDK's tables (`fetch.source: local`). Column
    names follow `EcephysProjectCache`: `ecephys_channel_id` for a unit's peak channel,
    `ecephys_probe_id`, `ecephys_structure_acronym` and the `*_ccf_coordinate` columns.
    """
    with open_nwb(path, session_id) as f:
        units = pd.DataFrame(_columns(f["units"])).rename(
            columns={"peak_channel_id": "ecephys_channel_id"}
        )
        channels = pd.DataFrame(_columns(f[ELECTRODES])).rename(
            columns={
                "probe_id": "ecephys_probe_id",
                "location": "ecephys_structure_acronym",
                "x": "anterior_posterior_ccf_coordinate",
                "y": "dorsal_ventral_ccf_coordinate",
                "z": "left_right_ccf_coordinate",
            }
        )
        probes = pd.DataFrame(
            [_probe_row(g, session_id) for _, g in sorted(_probe_groups(f).items())],
            columns=[
                "id",
                "name",
                "sampling_rate",
                "lfp_sampling_rate",
                "has_lfp_data",
                "location",
                "ecephys_session_id",
            ],
        )
        subject = f.get("general/subject")
        notes = f.get("general/stimulus")
        sessions = pd.DataFrame(
            {
                "id": [session_id],
                "specimen_id": [_value(subject, "subject_id")],
                "session_type": [text(notes[()]) if isinstance(notes, h5py.Dataset) else ""],
                "age_in_days": [_value(subject, "age_in_days")],
                "sex": [_value(subject, "sex")],
                "full_genotype": [_value(subject, "genotype")],
                "unit_count": [len(units)],
                "probe_count": [len(probes)],
                "channel_count": [len(channels)],
                "has_nwb": [True],
            }
        )
    return {"sessions": sessions, "probes": probes, "channels": channels, "units": units}


def _probe_row(group: h5py.Group, session_id: int) -> dict:
    device = group.get("device")
    rate = device.attrs.get("sampling_rate") if isinstance(device, h5py.Group) else None
    return {
        "id": int(group.attrs["probe_id"]),
        "name": group.name.rsplit("/", 1)[-1],
        "sampling_rate": None if rate is None else float(rate),
        "lfp_sampling_rate": _value(group, "lfp_sampling_rate"),
        "has_lfp_data": _value(group, "has_lfp_data"),
        "location": _value(group, "location"),
        "ecephys_session_id": session_id,
    }
