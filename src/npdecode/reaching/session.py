"""One reaching session through the pipeline's data steps: fetch, then bin/clean/split.

`fetch_reach` places `<name>.mat` (the twin, a Zenodo download or a local file) under
`data/raw/reach/<name>/`, or `<name>.nwb` for the NLB MC_RTT session (a local file);
`read_reaching` reads whichever is there with its reader, before anything downstream runs.
`split_arrays` turns the file's contents into the reaching split folder's arrays
(`npdecode.formats.reach_split`): counts and kinematics per bin, the contiguous block
split with still periods removed, and the clean report of what was dropped.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from npdecode.errors import DataError
from npdecode.formats.files import atomic_path
from npdecode.mat.read import Reaching, Units, read_mat
from npdecode.nwb.nlb import read_nlb
from npdecode.params import FetchParams, ReachParams
from npdecode.paths import Layout
from npdecode.reaching.prepare import prepare
from npdecode.sources import download
from npdecode.sources.macaque import download_session, find_file, find_mat
from npdecode.sources.macaque_sessions import NLB_FILES, NLB_SESSIONS, session
from npdecode.sources.macaque_twin import TwinSettings, write_twin


def record_session(name: str) -> None:
    """DataError unless `name` is one of the record's 47 sessions."""
    try:
        session(name)
    except ValueError as err:
        raise DataError(str(err)) from None


def fetch_reach(reach: ReachParams, fetch: FetchParams, name: str, layout: Layout) -> Path:
    """Place session `name`'s `.mat` (and a twin's truth) under `layout.reach_raw_dir`, or
    an NLB session's NWB; return the placed file."""
    if name in NLB_SESSIONS:
        return _fetch_nlb(reach, name, layout)
    record_session(name)
    mat = layout.reach_mat(name)
    mat.parent.mkdir(parents=True, exist_ok=True)
    layout.reach_nwb(name).unlink(missing_ok=True)
    for stale in (mat, layout.reach_truth(name)):  # a source switch leaves nothing behind
        if reach.source != "zenodo" or stale != mat:
            stale.unlink(missing_ok=True)
    if reach.source == "twin":
        settings = TwinSettings(duration_s=reach.twin_minutes * 60.0)
        write_twin(name, mat, layout.reach_truth(name), settings)
    elif reach.source == "zenodo":
        a = fetch.allen  # the project's one retry policy (timeouts, tries, backoff)
        policy = download.RetryPolicy(a.timeout_s, a.max_tries, a.backoff_s)
        download_session(name, mat, policy)
    else:
        folder = Path(reach.path or "")
        found = find_mat(folder if folder.is_absolute() else layout.root / folder, name)
        with atomic_path(mat) as tmp:
            shutil.copyfile(found, tmp)
    return mat


def _fetch_nlb(reach: ReachParams, name: str, layout: Layout) -> Path:
    """Copy NLB session `name`'s NWB (`NLB_FILES`) from below `reach.path`."""
    if reach.source != "local":
        raise DataError(
            f"session {name} is NLB MC_RTT's (DANDI 000129), not the Zenodo record's: it has "
            f"no twin and no Zenodo file; set reach.source: local and reach.path to the "
            f"folder holding {NLB_FILES[name]} (docs/macaque.md)"
        )
    folder = Path(reach.path or "")
    found = find_file(folder if folder.is_absolute() else layout.root / folder,
                      NLB_FILES[name], name)  # fmt: skip
    nwb = layout.reach_nwb(name)
    for stale in (layout.reach_mat(name), layout.reach_truth(name)):
        stale.unlink(missing_ok=True)
    with atomic_path(nwb) as tmp:
        shutil.copyfile(found, tmp)
    return nwb


def read_reaching(layout: Layout, name: str, units: Units = "sorted") -> Reaching:
    """Session `name` as fetched: its `.mat` (`read_mat`) or NLB NWB (`read_nlb`)."""
    nwb = layout.reach_nwb(name)
    if nwb.exists():
        return read_nlb(nwb, name, units)
    return read_mat(layout.reach_mat(name), name, units)


def unit_table(r: Reaching) -> pd.DataFrame:
    """One row per spike train: `unit_id` (`<channel name>/<row>`), channel (name and
    index), array, row."""
    chan = [r.chan_names[c] for c in r.unit_channel]
    return pd.DataFrame(
        {
            "unit_id": [
                f"{c.replace(' ', '')}/{int(w)}" for c, w in zip(chan, r.unit_row, strict=True)
            ],
            "channel": chan,
            "channel_index": np.asarray(r.unit_channel, dtype=np.int64),
            "array": [c.split(" ")[0] for c in chan],
            "row": np.asarray(r.unit_row, dtype=np.int64),
        }
    )


def split_arrays(
    r: Reaching, name: str, reach: ReachParams
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], pd.DataFrame, dict[str, Any]]:
    """(arrays, rows, units, report) of the reaching split folder for session `name`.

    DataError when the recording is too short for the blocks and history asked for.
    """
    try:
        p = prepare(r, reach.bin_width_s, reach.history, still_speed=reach.still_speed,
                    still_min_s=reach.still_min_s)  # fmt: skip
    except ValueError as err:
        raise DataError(f"session {name}: {err}") from None
    empty = [s for s, v in p.rows.items() if v.size == 0]
    if empty:
        raise DataError(
            f"session {name}: split {empty[0]} has no window of {reach.history} bins outside "
            f"still periods ({p.report['bins']} bins of {reach.bin_width_s} s): the recording "
            "is too short for these reach.bin_width_s / reach.history"
        )
    if p.counts.max(initial=0) > np.iinfo(np.uint16).max:
        raise DataError(f"session {name}: a bin holds more than 65535 spikes of one unit")
    n = p.counts.shape[0]
    arrays = {
        "counts": p.counts,
        "pos": p.pos,
        "vel": p.vel,
        "acc": p.acc,
        "time": r.t[0] + np.arange(n) * reach.bin_width_s,
    }
    units = unit_table(r)
    silent = int(np.count_nonzero(p.counts.sum(axis=0) == 0))
    report = {
        **p.report,
        "units": reach.units,
        "n_units": int(p.counts.shape[1]),
        "silent_units": silent,
        "target": reach.target,
        "duration_s": float(n * reach.bin_width_s),
    }
    return arrays, p.rows, units, report
