"""Read Allen Visual Coding – Neuropixels NWB files with h5py alone: every reader, one place.

- `verify_session_nwb`: is this a complete session file for this id (fetch, every source);
- `read_spike_times`, `read_units`, `read_presentations`, `read_invalid_times`,
  `read_session_info`: the columns the pipeline needs (bin, report); on a real 2-3 GB file
  they never touch LFP, waveforms or spike amplitudes; `read_unit_spike_times` reads a
  few units only, `read_description` the session description (analyses);
- `metadata_tables`: the sessions/probes/channels/units tables in Allen's columns;
- `check_frames`: a presentation table's labels, checked the same way at fetch and at bin.

Runs in both environments: the main one and the AllenSDK one (numpy < 2, pandas 1.5,
pynwb 2.8; see `npdecode.sources.allen_runner`), so it imports only h5py, numpy and
pandas. Writing lives in `npdecode.nwb.write` (pynwb, main environment only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from npdecode.errors import DataError

ELECTRODES = "general/extracellular_ephys/electrodes"
# What one session can plausibly hold, checked before anything is allocated: a real
# session file is 1.7-3.3 GB (docs/allen.md), so it holds under 450 million float64 spike
# times; the limit leaves twice that room.
MAX_SPIKES = 1_000_000_000
MAX_ROWS = 10_000_000  # rows of any other table (units, channels, presentations, intervals)
# A dataset may claim at most this many times the bytes it stores (plus SMALL_BYTES):
# spike times and table columns compress by far less, while a dataset of unwritten
# chunks or compressed zeros claims gigabytes from a few kilobytes.
MAX_EXPANSION = 20
SMALL_BYTES = 1 << 20
READ_CHUNK = 1 << 24  # elements per read of a large dataset
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


# How many images a stimulus shows: its valid `frame` values are -1 (the blank) and
# 0..n-1. A fact about Allen's stimuli, not something a file's observed frames can tell:
# an image id out of range would silently become a new class. The synthetic writer records
# its own image count (<= 118, a subset of Allen's ids) in the attribute N_IMAGES_ATTR of
# the presentations table, which wins when present. For a stimulus not listed here (e.g.
# natural_movie_one, whose frames run 0..899) only "an integer >= -1" can be checked.
IMAGES_PER_STIMULUS = {"natural_scenes": 118}
N_IMAGES_ATTR = "npdecode_n_images"
# Text a `frame` column may hold for "no frame" (AllenSDK writes 'null'): read as NaN.
MISSING_FRAME_TEXT = frozenset({"", "null", "nan", "none", "n/a"})


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
    return _text_or_empty(path, session_id, "identifier")


def _text_or_empty(path: str | Path, session_id: int, key: str) -> str:
    """The text dataset `key` at the top of the NWB file, or '' if the file has none."""
    with open_nwb(path, session_id) as f:
        return text(f[key][()]) if key in f else ""


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
    ids = read_checked(units["id"], where)
    n_units = ids.shape[0]
    if n_units == 0:
        raise DataError(f"{where}: the units table is empty")
    check_unique_ids(ids, where, "units")
    n_spikes = check_claimed_size(units["spike_times"], where, MAX_SPIKES)
    check_spike_index(read_checked(units["spike_times_index"], where), n_units, n_spikes, where)
    if n_spikes and not np.isfinite(units["spike_times"][n_spikes - 1]):
        raise DataError(f"{where}: the last spike time is not a finite number")
    return int(n_units), int(n_spikes)


def check_unique_ids(ids: np.ndarray, where: str, table: str) -> None:
    """Raise DataError if a table's row ids repeat: rows are matched by id downstream."""
    uniq, counts = np.unique(np.asarray(ids), return_counts=True)
    dup = uniq[counts > 1]
    if dup.size:
        raise DataError(
            f"{where}: the {table} table repeats ids {dup[:5].tolist()} "
            f"({dup.size} on more than one row): each row needs its own id "
            "(a corrupt or hand-merged file?)"
        )


def check_spike_index(ends: np.ndarray, n_units: int, n_spikes: int, where: str) -> np.ndarray:
    """The end offsets of the ragged `spike_times` column, checked; as int64.

    One offset per unit, never decreasing, the last one at the end of the spike data.
    A broken index would cut the spike data at the wrong places: spikes of one unit given
    to another, which later looks like unsorted spike times.
    """
    ends = np.asarray(ends)
    if ends.ndim != 1 or ends.shape[0] != n_units or (n_units and ends.dtype.kind not in "iu"):
        raise DataError(
            f"{where}: units spike_times_index has shape {ends.shape} and dtype {ends.dtype}, "
            f"expected {n_units} integer offsets, one per unit (corrupt file?)"
        )
    ends = ends.astype(np.int64)
    step = np.diff(ends, prepend=0)
    if (step < 0).any():
        i = int(np.argmax(step < 0))
        before = int(ends[i - 1]) if i else 0
        raise DataError(
            f"{where}: units spike_times_index goes back at unit row {i} ({int(ends[i])} after "
            f"{before}): the index that splits spike_times by unit is corrupt (the spike "
            "times themselves may be fine)"
        )
    if n_units and int(ends[-1]) != n_spikes:
        raise DataError(
            f"{where}: units spike_times_index ends at {int(ends[-1])}, but spike_times holds "
            f"{n_spikes} spikes: the index does not match its data (corrupt file?)"
        )
    return ends


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
    """Number of rows of a non-empty `<stimulus>_presentations` table with the needed columns,
    unique ids and valid labels (`check_frames`)."""
    key = f"intervals/{stimulus}_presentations"
    table = presentations_group(f, where, stimulus)
    for col in ("id", "start_time", "stop_time", "frame"):
        if col not in table:
            raise DataError(f"{where}: '{key}' has no '{col}' column")
    n = table["start_time"].shape[0]
    if n == 0:
        raise DataError(f"{where}: '{key}' is empty")
    ids = table["id"][()]
    check_unique_ids(ids, where, key)
    check_frames(_column(table, "frame"), images_shown(table, stimulus), f"{where}: {key}", ids)
    return int(n)


def images_shown(table: h5py.Group, stimulus: str) -> int | None:
    """How many images `stimulus` shows (valid frames -1..n-1), or None when unknown.

    The file's own record (`N_IMAGES_ATTR`, written by the synthetic generator) first,
    else Allen's count for the stimulus (`IMAGES_PER_STIMULUS`).
    """
    if N_IMAGES_ATTR in table.attrs:
        value = table.attrs[N_IMAGES_ATTR]
        if not isinstance(value, int | np.integer) or int(value) < 1:
            raise DataError(
                f"{table.file.filename}: {table.name} attribute {N_IMAGES_ATTR} is {value!r}, "
                "not a positive image count (corrupt file?)"
            )
        return int(value)
    return IMAGES_PER_STIMULUS.get(stimulus)


def check_frames(
    raw: np.ndarray, n_images: int | None, where: str, ids: np.ndarray | None = None
) -> np.ndarray:
    """A presentation table's `frame` column as float64 labels, checked; NaN = no frame.

    A valid frame is an integer image id: -1 for the blank, 0..n_images-1 for the images
    (any integer >= -1 when `n_images` is None). A missing frame (NaN, or text such as
    'null') is allowed: the clean stage drops such presentations and counts them. Anything
    else (6.9, 118 for a 118-image stimulus, -2, 'abc', infinity) is a DataError naming
    the first bad rows, so a label is never truncated or turned into a new class; so is a
    column with no frame at all.

    Args:
        raw: (P,) the column as read (numbers, or text decoded to str).
        n_images: images of the stimulus, or None when unknown.
        where: session, file and table, for the message.
        ids: (P,) presentation ids, named in the message when given.
    """
    raw = np.asarray(raw)
    frames = np.full(raw.shape, np.nan)
    unparsed = np.zeros(raw.shape, bool)
    if raw.dtype.kind in "biuf":
        frames = raw.astype(np.float64)
    else:
        for i, value in enumerate(raw):
            text_value = str(value).strip()
            if text_value.lower() in MISSING_FRAME_TEXT:
                continue
            try:
                frames[i] = float(text_value)
            except ValueError:
                unparsed[i] = True
    top = np.inf if n_images is None else n_images - 1
    present = ~np.isnan(frames)
    with np.errstate(invalid="ignore"):
        bad = unparsed | (
            present
            & (~np.isfinite(frames) | (frames != np.round(frames)) | (frames < -1) | (frames > top))
        )
    if bad.any():
        rows = np.flatnonzero(bad)[:5]
        shown = ", ".join(
            f"row {r}"
            + (f" (presentation {ids[r]})" if ids is not None else "")
            + f": {_plain(raw[r])!r}"
            for r in rows
        )
        valid = ">= -1" if n_images is None else f"-1 for the blank, 0..{n_images - 1}"
        n_bad = int(bad.sum())
        raise DataError(
            f"{where}: column 'frame': {n_bad} of {len(frames)} rows "
            f"{'is not an image id' if n_bad == 1 else 'are not image ids'} "
            f"(integers {valid}); first: {shown}. Labels are never rounded or added as "
            "new classes: fix or exclude these presentations"
        )
    if not present.any():
        raise DataError(
            f"{where}: column 'frame' has no value in any of its {len(frames)} rows: "
            "nothing to label the presentations with"
        )
    return frames


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds (for messages)."""
    return value.item() if isinstance(value, np.generic) else value


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


# --- the columns the pipeline reads --------------------------------------------------


def check_claimed_size(ds: h5py.Dataset, where: str, limit: int = MAX_ROWS) -> int:
    """The number of elements `ds` claims, checked before anything is read or allocated.

    Refused with a DataError naming the file, the dataset and the claim: more elements
    than one session can plausibly hold (`limit`), more bytes than the file stores for
    the dataset (`MAX_EXPANSION`), or data kept outside the file (external or virtual
    storage, which would read other files).
    """
    n = int(np.prod(ds.shape, dtype=np.int64)) if ds.shape else 1
    claimed = n * ds.dtype.itemsize
    if ds.external or ds.is_virtual:
        raise DataError(
            f"{where}: dataset {ds.name} keeps its data outside the file (external or "
            "virtual storage): refusing to read other files through it"
        )
    if n > limit:
        raise DataError(
            f"{where}: dataset {ds.name} claims {n:,} elements, more than one session can "
            f"plausibly hold ({limit:,}): a corrupt or forged file"
        )
    stored = ds.id.get_storage_size()
    if claimed > MAX_EXPANSION * stored + SMALL_BYTES:
        raise DataError(
            f"{where}: dataset {ds.name} claims {n:,} elements ({claimed / 2**20:,.0f} MiB) but "
            f"the file stores {stored / 2**20:,.1f} MiB for it: a corrupt or forged file"
        )
    return n


def read_checked(ds: h5py.Dataset, where: str, limit: int = MAX_ROWS) -> np.ndarray:
    """All of a 1-D dataset, its claimed size checked first, read in bounded chunks."""
    n = check_claimed_size(ds, where, limit)
    if ds.ndim != 1 or n <= READ_CHUNK or ds.dtype.kind in "SOV":
        return ds[()]
    out = np.empty(n, dtype=ds.dtype)
    for start in range(0, n, READ_CHUNK):
        stop = min(start + READ_CHUNK, n)
        ds.read_direct(out, np.s_[start:stop], np.s_[start:stop])
    return out


def _column(group: h5py.Group, name: str, where: str = "") -> np.ndarray:
    """One 1-D column of a table (size checked: `read_checked`); strings decoded to str."""
    data = read_checked(group[name], where or f"{group.file.filename}")
    if data.dtype.kind in "SO":
        return np.array([text(v) for v in data], dtype=object)
    return data


def read_spike_times(path: str | Path, session_id: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Unit ids (U,) and each unit's spike times (s), as views into one array."""
    path = Path(path)
    where = f"session {session_id}: {path}"
    with open_nwb(path, session_id) as f:
        units = _group(f, "units", where)
        ids = read_checked(units["id"], where).astype(np.int64)
        times = read_checked(units["spike_times"], where, MAX_SPIKES)
        times = times.astype(np.float64, copy=False)
        raw_ends = read_checked(units["spike_times_index"], where)
    check_unique_ids(ids, where, "units")
    ends = check_spike_index(raw_ends, len(ids), len(times), where)
    return ids, np.split(times, ends[:-1])


def read_unit_spike_times(
    path: str | Path, session_id: int, unit_ids: np.ndarray
) -> list[np.ndarray]:
    """The spike times (s) of the units `unit_ids` only, in that order.

    Reads just their slices of the ragged column: on a 2 GB session, a hundred units cost
    megabytes, not the whole spike_times dataset.
    """
    path = Path(path)
    with open_nwb(path, session_id) as f:
        where = f"session {session_id}: {path}"
        units = _group(f, "units", where)
        ids = read_checked(units["id"], where).astype(np.int64)
        n_spikes = check_claimed_size(units["spike_times"], where, MAX_SPIKES)
        ends = check_spike_index(
            read_checked(units["spike_times_index"], where), len(ids), n_spikes, where
        )
        row = {int(u): i for i, u in enumerate(ids)}
        missing = [int(u) for u in unit_ids if int(u) not in row]
        if missing:
            raise DataError(f"session {session_id}: {path} has no units {missing[:5]}")
        out = []
        for u in unit_ids:
            i = row[int(u)]
            start = int(ends[i - 1]) if i else 0
            out.append(units["spike_times"][start : int(ends[i])].astype(np.float64))
    return out


def read_units(path: str | Path, session_id: int) -> pd.DataFrame:
    """Unit metadata joined with its peak channel: probe, area, depth, quality metrics."""
    path = Path(path)
    with open_nwb(path, session_id) as f:
        units = _group(f, "units", f"session {session_id}: {path}")
        cols = [
            "peak_channel_id",
            "quality",
            "firing_rate",
            "isi_violations",
            "amplitude_cutoff",
            "presence_ratio",
            "snr",
        ]
        table = pd.DataFrame({"unit_id": units["id"][()].astype(np.int64)})
        for c in cols:
            table[c] = _column(units, c) if c in units else np.nan
        channels = _read_channels(f, path, session_id)
        probes = _read_probes(f)
    table = table.merge(channels, left_on="peak_channel_id", right_on="channel_id", how="left")
    if table["probe_id"].isna().any():
        bad = table.loc[table["probe_id"].isna(), "unit_id"].tolist()[:5]
        raise DataError(
            f"session {session_id}: {path}: units {bad} have a peak_channel_id not in electrodes"
        )
    table["probe_id"] = table["probe_id"].astype(np.int64)
    table = table.merge(probes, on="probe_id", how="left").drop(columns="channel_id")
    return table


def _read_channels(f: h5py.File, path: Path, session_id: int) -> pd.DataFrame:
    el = _group(f, ELECTRODES, f"session {session_id}: {path}")
    out = pd.DataFrame({"channel_id": el["id"][()].astype(np.int64)})
    names = {
        "location": "area",
        "probe_id": "probe_id",
        "probe_vertical_position": "probe_vertical_position",
        "probe_horizontal_position": "probe_horizontal_position",
        "x": "anterior_posterior_ccf_coordinate",
        "y": "dorsal_ventral_ccf_coordinate",
        "z": "left_right_ccf_coordinate",
    }
    for src, dst in names.items():
        out[dst] = _column(el, src) if src in el else np.nan
    out["area"] = out["area"].replace({"None": "grey", "": "grey"})
    return out


def _read_probes(f: h5py.File) -> pd.DataFrame:
    rows = []
    groups = f.get("general/extracellular_ephys", {})
    for name, g in groups.items():
        if isinstance(g, h5py.Group) and "probe_id" in g.attrs:
            rows.append({"probe_id": int(g.attrs["probe_id"]), "probe": name})
    return pd.DataFrame(rows, columns=["probe_id", "probe"])


def read_presentations(path: str | Path, session_id: int, stimulus: str) -> pd.DataFrame:
    """The `<stimulus>_presentations` table: presentation_id, start/stop time, frame, block.

    Ids must be unique and frames valid labels (`check_frames`; NaN = no frame).
    """
    path = Path(path)
    where = f"session {session_id}: {path}"
    key = f"intervals/{stimulus}_presentations"
    with open_nwb(path, session_id) as f:
        g = presentations_group(f, where, stimulus)
        if "frame" not in g:
            raise DataError(f"{where}: {key} has no 'frame' column")
        table = pd.DataFrame(
            {
                "presentation_id": read_checked(g["id"], where).astype(np.int64),
                "start_time": read_checked(g["start_time"], where).astype(np.float64),
                "stop_time": read_checked(g["stop_time"], where).astype(np.float64),
            }
        )
        ids = table["presentation_id"].to_numpy()
        check_unique_ids(ids, where, key)
        table["frame"] = check_frames(
            _column(g, "frame"), images_shown(g, stimulus), f"{where}: {key}", ids
        )
        if "stimulus_block" in g:
            block = pd.Series(_column(g, "stimulus_block"))
            table["stimulus_block"] = pd.to_numeric(block, errors="coerce").to_numpy()
    return table


def read_invalid_times(path: str | Path, session_id: int) -> pd.DataFrame:
    """invalid_times as start_time, stop_time, tags (list of str); empty if the file has none."""
    path = Path(path)
    with open_nwb(path, session_id) as f:
        if "intervals/invalid_times" not in f:
            return pd.DataFrame({"start_time": [], "stop_time": [], "tags": []})
        g = f["intervals/invalid_times"]
        where = f"session {session_id}: {path}"
        start = read_checked(g["start_time"], where).astype(np.float64)
        stop = read_checked(g["stop_time"], where).astype(np.float64)
        tags: list[list[str]] = [[] for _ in start]
        if "tags" in g and "tags_index" in g:
            flat = _column(g, "tags")
            ends = read_checked(g["tags_index"], where).astype(np.int64)
            tags = [list(t) for t in np.split(flat, ends[:-1])]
    return pd.DataFrame({"start_time": start, "stop_time": stop, "tags": tags})


def read_description(path: str | Path, session_id: int) -> str:
    """The NWB `session_description` (a synthetic twin names the real session it mirrors)."""
    return _text_or_empty(path, session_id, "session_description")


def read_session_info(path: str | Path, session_id: int) -> dict:
    """Identifier, specimen (mouse) id and session type from the file's metadata."""
    with open_nwb(path, session_id) as f:
        subject = f.get("general/subject")
        specimen = (
            text(subject["subject_id"][()])
            if subject is not None and "subject_id" in subject
            else ""
        )
    return {
        "identifier": read_identifier(path, session_id),
        "specimen_id": specimen,
        "session_type": read_session_type(path, session_id),
    }


# --- Allen-style metadata tables ------------------------------------------------------


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
        out[name] = _column(group, name)
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
