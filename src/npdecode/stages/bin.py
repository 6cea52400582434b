"""Stage `bin`: spike counts per presentation × time bin × unit, from the NWB file.

Spikes inside the session's `invalid_times` (for the unit's probe, or for all probes)
are removed (their counts subtracted) and counted; presentations overlapping any invalid interval are
flagged for the clean stage to drop.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from npdecode import nwb
from npdecode.binning import bin_spikes, presentations_overlapping, spikes_inside
from npdecode.cli import run_stage
from npdecode.errors import DataError
from npdecode.io import write_json, write_parquet
from npdecode.params import BinParams, Params
from npdecode.paths import Layout
from npdecode.runinfo import measure
from npdecode.tables import to_table

PARAMS = ("bin",)
log = logging.getLogger(__name__)


def main(params: Params, session_id: int, root: Path = Path(".")) -> None:
    """Bin session `session_id`: writes the binned table, units and presentations tables."""
    layout = Layout(root)
    with measure() as cost:
        path = layout.nwb(session_id)
        unit_ids, spikes = nwb.read_spike_times(path, session_id)
        units = nwb.read_units(path, session_id)
        presentations = nwb.read_presentations(path, session_id, params.bin.stimulus)
        invalid = nwb.read_invalid_times(path, session_id)
        info = nwb.read_session_info(path, session_id)
        if not np.array_equal(units["unit_id"].to_numpy(), unit_ids):
            raise DataError(f"session {session_id}: {path}: units table and spike times disagree")
        try:
            binned, presentations, report = bin_session(
                spikes, units, presentations, invalid, params.bin
            )
        except ValueError as err:  # bin_spikes: unsorted/NaN times, overlaps, overflow
            raise DataError(f"session {session_id}: {path}: {err}") from err
        write_parquet(binned, layout.binned(session_id), wide=True)
        write_parquet(units, layout.binned_units(session_id))
        write_parquet(presentations, layout.binned_presentations(session_id))
    report.update(
        session_id=session_id,
        specimen_id=info["specimen_id"] or None,
        session_type=info["session_type"] or None,
        **cost,
    )
    write_json(layout.bin_report(session_id), report)
    log.info(
        "session %d: %d presentations x %d bins x %d units",
        session_id,
        len(presentations),
        params.bin.timesteps_per_frame,
        len(units),
    )


def invalid_intervals_for(invalid: pd.DataFrame, probe: str, probe_id: int) -> np.ndarray:
    """(K, 2) invalid intervals that apply to one probe, as AllenSDK scopes them.

    An interval applies when its tags name the probe (by name or id) or `all_probes`.
    """
    names = {probe, str(probe_id), "all_probes"}
    mask = [bool(names.intersection(map(str, tags))) for tags in invalid["tags"]]
    return invalid.loc[mask, ["start_time", "stop_time"]].to_numpy(dtype=np.float64).reshape(-1, 2)


def invalid_spikes(
    spikes: list[np.ndarray], units: pd.DataFrame, invalid: pd.DataFrame
) -> tuple[list[np.ndarray], dict[str, int]]:
    """Each unit's spikes inside the invalid intervals of its probe; their count per probe."""
    inside = [s[:0] for s in spikes]
    removed: dict[str, int] = {}
    # dropna=False: a unit whose probe is unknown still loses spikes in `all_probes` intervals
    groups = units.groupby(["probe", "probe_id"], sort=True, dropna=False).indices
    for (probe, probe_id), rows in groups.items():
        intervals = invalid_intervals_for(invalid, probe, probe_id)
        for u in rows:
            inside[u] = spikes_inside(spikes[u], intervals)
        removed[probe if isinstance(probe, str) else "unknown probe"] = int(
            sum(len(inside[u]) for u in rows)
        )
    return inside, removed


def bin_session(
    spikes: list[np.ndarray],
    units: pd.DataFrame,
    presentations: pd.DataFrame,
    invalid: pd.DataFrame,
    params: BinParams,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Pure core of the stage: (binned table, presentations table, report)."""
    presentations = presentations.sort_values("start_time", kind="stable").reset_index(drop=True)
    starts = presentations["start_time"].to_numpy()
    stops = presentations["stop_time"].to_numpy()
    counts = bin_spikes(spikes, starts, stops, params.timesteps_per_frame)  # (P, T, U)
    # Remove invalid spikes by subtracting their counts: only presentations overlapping an
    # invalid interval can hold one, and the spike trains themselves are never copied.
    all_invalid = invalid[["start_time", "stop_time"]].to_numpy(dtype=np.float64).reshape(-1, 2)
    overlap = presentations_overlapping(starts, stops, all_invalid)
    presentations["overlaps_invalid"] = overlap
    inside, removed = invalid_spikes(spikes, units, invalid)
    if overlap.any():
        bad = bin_spikes(
            inside, starts[overlap], stops[overlap], params.timesteps_per_frame, counts.dtype
        )
        counts[overlap] -= bad
    binned = to_table(counts, presentations, units["unit_id"].to_numpy())
    report = {
        "n_units": len(units),
        "n_presentations": len(presentations),
        "n_bins": params.timesteps_per_frame,
        "n_spikes": int(sum(len(s) for s in spikes)) - int(sum(removed.values())),
        "n_spikes_binned": int(counts.sum(dtype=np.int64)),
        "invalid_spikes_removed": {**removed, "total": int(sum(removed.values()))},
        "presentations_overlapping_invalid": int(presentations["overlaps_invalid"].sum()),
    }
    return binned, presentations, report


if __name__ == "__main__":
    run_stage("bin", main)
