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
from npdecode.formats.split import write_split
from npdecode.params import Params, SessionId
from npdecode.paths import Layout
from npdecode.preprocess import make_split

PARAMS = ("data", "split", "bin.timesteps_per_frame")
log = logging.getLogger(__name__)


def main(params: Params, session_id: SessionId, root: Path = Path(".")) -> None:
    """Split session `session_id` into data/split/<id>/."""
    layout = Layout(root)
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


if __name__ == "__main__":
    run_stage("split", main)
