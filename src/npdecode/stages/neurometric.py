"""Stage `neurometric`: accuracy per brain area vs number of units and vs time.

Decodes random subsets of each area's units, and the first bins of each presentation,
with `neurometric.model` (analyses/neurometric.py), and measures the facts the report
checks when a session decodes near chance (analyses/diagnostics.py). Writes
`metrics/neurometric/<id>.json` and the accuracy of each area's
units in `scores/neurometric_<id>.json`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from npdecode.analyses.diagnostics import session_diagnostics
from npdecode.analyses.neurometric import neurometric
from npdecode.cli import run_stage
from npdecode.formats.files import read_json, write_json
from npdecode.formats.scores import neurometric_scores, write_scores
from npdecode.formats.split import load_session
from npdecode.params import Params, SessionId
from npdecode.paths import Layout

# the model is a param, so every train.* section it may read is one too
PARAMS = ("neurometric", "train")
log = logging.getLogger(__name__)


def main(params: Params, session_id: SessionId, root: Path = Path(".")) -> None:
    """Neurometric curves and diagnostics of session `session_id`."""
    layout = Layout(root)
    data = load_session(layout.split_dir(session_id), session_id)
    result = neurometric(data, params.neurometric, params.train)
    result["diagnostics"] = session_diagnostics(
        data,
        read_json(layout.clean_report(session_id)),
        read_json(layout.bin_report(session_id)),
    )
    write_json(layout.neurometric(session_id), result)
    write_scores(layout.scores(f"neurometric_{session_id}"), neurometric_scores(session_id, result))
    log.info(
        "session %d: %d areas decoded, %d skipped",
        session_id,
        len(result["areas"]),
        result["skipped"]["n"],
    )


if __name__ == "__main__":
    run_stage("neurometric", main)
