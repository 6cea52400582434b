"""Stage `bin`: spike counts per presentation × time bin × unit, from the NWB file.

Spikes inside the session's `invalid_times` (for the unit's probe, or for all probes)
are removed (their counts subtracted) and counted; presentations overlapping any invalid interval are
flagged for the clean stage to drop.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from npdecode.binning import bin_session
from npdecode.cli import run_stage
from npdecode.errors import DataError
from npdecode.formats.binned import Counts, write_counts, write_meta
from npdecode.formats.files import write_json
from npdecode.nwb import read as nwb
from npdecode.params import Params, SessionId, integer_id
from npdecode.paths import Layout

PARAMS = ("bin",)
log = logging.getLogger(__name__)


def main(params: Params, session_id: SessionId, root: Path = Path(".")) -> None:
    """Bin session `session_id`: writes the counts, the units and presentations tables, a report."""
    layout = Layout(root)
    path = layout.nwb(session_id)
    nwb_id = integer_id(session_id, "the Allen-format NWB reader")
    unit_ids, spikes = nwb.read_spike_times(path, nwb_id)
    units = nwb.read_units(path, nwb_id)
    presentations = nwb.read_presentations(path, nwb_id, params.bin.stimulus)
    invalid = nwb.read_invalid_times(path, nwb_id)
    info = nwb.read_session_info(path, nwb_id)
    if not np.array_equal(units["unit_id"].to_numpy(), unit_ids):
        raise DataError(f"session {session_id}: {path}: units table and spike times disagree")
    try:
        counts, presentations, report = bin_session(
            spikes, units, presentations, invalid, params.bin.timesteps_per_frame
        )
    except ValueError as err:  # bin_spikes: unsorted/NaN times, overlaps, overflow
        raise DataError(f"session {session_id}: {path}: {err}") from err
    del spikes  # the spike trains are the largest thing held; the writes need none of it
    ids = presentations["presentation_id"].to_numpy()
    binned = Counts.from_counts(counts, ids, units["unit_id"].to_numpy())  # no copy
    write_counts(layout.binned(session_id), binned)
    write_meta(layout.binned_units(session_id), units)
    write_meta(layout.binned_presentations(session_id), presentations)
    report.update(
        session_id=session_id,
        specimen_id=info["specimen_id"] or None,
        session_type=info["session_type"] or None,
    )
    write_json(layout.bin_report(session_id), report)
    log.info(
        "session %d: %d presentations x %d bins x %d units",
        session_id,
        len(presentations),
        params.bin.timesteps_per_frame,
        len(units),
    )


if __name__ == "__main__":
    run_stage("bin", main)
