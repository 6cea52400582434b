"""Stage `clean`: drop units and presentations by explicit, reported rules.

Unit rules (each off when its param is null or empty): spike-sorting quality
(`quality`, `isi_violations_max`, `amplitude_cutoff_max`, `presence_ratio_min`),
brain area (`areas`, shell-style patterns such as `VIS*`), silent units (mean rate over
the presentations below `min_rate_hz`) and abnormal ones (the old pipeline's z-score
thresholds: a bin more than `zscore_max` sds above the unit's mean, or no bin ever above
`zscore_min`). Presentations overlapping `invalid_times` are dropped. These rules use no
labels; everything fitted to data (normalisation, zero-variance units) waits for the
split stage and uses the training split only.
"""

from __future__ import annotations

import logging
from pathlib import Path

from npdecode.cli import run_stage
from npdecode.formats.binned import read_counts, read_meta, write_counts
from npdecode.formats.files import write_json
from npdecode.params import Params, SessionId
from npdecode.paths import Layout
from npdecode.preprocess import clean_session

PARAMS = ("clean",)
log = logging.getLogger(__name__)


def main(params: Params, session_id: SessionId, root: Path = Path(".")) -> None:
    """Clean session `session_id`: writes the clean counts and a report of every drop."""
    layout = Layout(root)
    binned = read_counts(layout.binned(session_id), session_id)
    units = read_meta(layout.binned_units(session_id))
    presentations = read_meta(layout.binned_presentations(session_id))
    clean, report = clean_session(binned, units, presentations, params.clean, session_id)
    write_counts(layout.clean(session_id), clean)
    report.update(session_id=session_id)
    write_json(layout.clean_report(session_id), report)
    log.info(
        "session %d: kept %d/%d units, %d/%d presentations",
        session_id,
        report["units"]["kept"],
        report["units"]["total"],
        report["presentations"]["kept"],
        report["presentations"]["total"],
    )


if __name__ == "__main__":
    run_stage("clean", main)
