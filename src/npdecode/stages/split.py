"""Stage `split`: presentations -> train / val / test, with train-only statistics.

A training example is one presentation (T bins × U units), labelled by its `frame`
(blank = -1 is a class unless `data.include_blank` is false). The default split is
time-ordered and stratified: for each image its earliest presentations train, later ones
validate, the last ones test. Zero-variance units, normalisation statistics and the
ST-GAT unit graph are computed from the training split only.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from npdecode.cli import run_stage
from npdecode.errors import DataError
from npdecode.formats.binned import per_presentation, read_counts, read_meta
from npdecode.formats.files import read_json, write_json
from npdecode.formats.reach_split import write_reach_split
from npdecode.formats.split import write_split
from npdecode.params import Params, SessionId
from npdecode.paths import Layout
from npdecode.preprocess import make_split
from npdecode.reaching.session import read_reaching, split_arrays
from npdecode.sources.macaque_sessions import session

PARAMS = ("data", "split", "bin.timesteps_per_frame")
REACH_PARAMS = (
    "reach.units",
    "reach.bin_width_s",
    "reach.history",
    "reach.target",
    "reach.still_speed",
    "reach.still_min_s",
)
log = logging.getLogger(__name__)


def main(params: Params, session_id: SessionId, root: Path = Path(".")) -> None:
    """Split session `session_id` into data/split/<id>/."""
    layout = Layout(root)
    if isinstance(session_id, str) and session_id in params.reach_sessions:
        split_reaching(params, session_id, layout)
        return
    n_bins = params.bin.timesteps_per_frame
    clean = read_counts(layout.clean(session_id), session_id)
    if clean.counts.shape[1] != n_bins:
        raise DataError(
            f"session {session_id}: {layout.clean(session_id)} has {clean.counts.shape[1]} bins "
            f"per presentation, params bin.timesteps_per_frame is {n_bins}: rerun `dvc repro`"
        )
    shown = read_meta(layout.binned_presentations(session_id))
    counts, pres = per_presentation(clean, shown, session_id, str(layout.clean(session_id)))
    units = read_meta(layout.binned_units(session_id))
    missing = np.setdiff1d(clean.unit_id, units["unit_id"].to_numpy())
    if len(missing):
        raise DataError(
            f"session {session_id}: units {missing[:10].tolist()} of "
            f"{layout.clean(session_id)} are not in {layout.binned_units(session_id)}"
        )
    units = units.set_index("unit_id").loc[clean.unit_id].reset_index()
    specimen = read_json(layout.bin_report(session_id)).get("specimen_id")
    width = float(np.median(shown["stop_time"] - shown["start_time"])) / n_bins
    data, extra = make_split(
        session_id, counts, pres, units, params, bin_width_s=width, specimen_id=specimen
    )
    meta = write_split(layout.split_dir(session_id), data, extra)
    log.info(
        "session %d: train/val/test = %s, %d units",
        session_id,
        list(meta["n"].values()),
        data.n_units,
    )
    summary = {k: meta[k] for k in ("session_id", "specimen_id", "n_units", "n", "method")}
    summary.update(
        n_zero_variance_units_dropped=len(extra["zero_variance_units_dropped"]),
        n_classes=data.n_classes,
    )
    write_json(layout.split_report(session_id), summary)


def split_reaching(params: Params, name: str, layout: Layout) -> None:
    """Bin, clean and split reaching session `name` into data/reach/<name>/."""
    reach = params.reach
    r = read_reaching(layout, name, reach.units)
    arrays, rows, units, report = split_arrays(r, name, reach)
    s = session(name)
    meta = {
        "session_id": name,
        "dataset": "macaque",
        "monkey": s.monkey,
        "date": s.date.isoformat(),
        "bin_width_s": reach.bin_width_s,
        "history": reach.history,
        "target": reach.target,
        "units": reach.units,
    }
    written = write_reach_split(layout.reach_split_dir(name), arrays, rows, units, meta)
    write_json(layout.reach_split_report(name), {**meta, **report, "n": written["n"]})
    log.info("session %s: train/val/test = %s windows, %d units, %.0f s still excluded", name,
             list(written["n"].values()), written["n_units"], report["still_seconds_excluded"])  # fmt: skip


if __name__ == "__main__":
    run_stage("split", main)
