"""Stage `reference`: chance, the plug-in Poisson decoder and (synthetic) the ideal observer.

These bracket every model: chance from below; the ideal observer, which knows the true
rates, from above; the plug-in Poisson decoder shows what the right model class achieves
when its rates are learned from the same training split.
"""

from __future__ import annotations

import logging
from pathlib import Path

from npdecode.cli import run_stage
from npdecode.formats.files import write_json
from npdecode.formats.scores import reference_scores, write_scores
from npdecode.formats.split import load_session
from npdecode.formats.truth import read_truth
from npdecode.params import Params, SessionId
from npdecode.paths import Layout
from npdecode.reference import reference_metrics

PARAMS: tuple[str, ...] = ()
log = logging.getLogger(__name__)


def main(params: Params, session_id: SessionId, root: Path = Path(".")) -> None:
    """Write metrics/reference/<id>.json."""
    layout = Layout(root)
    data = load_session(layout.split_dir(session_id), session_id)
    truth_path = layout.truth(session_id)
    truth = read_truth(truth_path) if truth_path.exists() else None
    result = reference_metrics(data, truth)
    write_json(layout.reference(session_id), result)
    write_scores(layout.scores(f"reference_{session_id}"), reference_scores(session_id, result))
    ideal = result["ideal"]["accuracy"] if result["ideal"] else None
    log.info(
        "session %d: chance %.4f, poisson plug-in %.3f, ideal %s",
        session_id,
        result["chance"],
        result["poisson_plugin"]["accuracy"],
        ideal,
    )


if __name__ == "__main__":
    run_stage("reference", main)
