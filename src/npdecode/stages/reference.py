"""Stage `reference`: chance, the plug-in Poisson decoder and (synthetic) the ideal observer.

These bracket every model: chance from below; the ideal observer, which knows the true
rates, from above; the plug-in Poisson decoder shows what the right model class achieves
when its rates are learned from the same training split.

A session of params `reach_sessions` (dvc.yaml's `reach_reference`): the field's
references on its reaching split folder, the Wiener filter (ridge on the history window)
and the Kalman filter, and the twin's ideal decoder (true tuning) as the ceiling; R² per
axis and overall with 95 % block-bootstrap intervals, paired differences between them,
and their test predictions (`npdecode.reaching.decoders`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from npdecode.cli import run_stage
from npdecode.formats.files import write_csv, write_json
from npdecode.formats.macaque_truth import read_macaque_truth
from npdecode.formats.reach_split import load_reach
from npdecode.formats.scores import reach_scores, reference_scores, write_scores
from npdecode.formats.split import load_session
from npdecode.formats.truth import read_truth
from npdecode.params import Params, SessionId
from npdecode.paths import Layout
from npdecode.reaching import decoders
from npdecode.reference import reference_metrics

PARAMS: tuple[str, ...] = ()
log = logging.getLogger(__name__)


def main(params: Params, session_id: SessionId, root: Path = Path(".")) -> None:
    """Write metrics/reference/<id>.json."""
    layout = Layout(root)
    if isinstance(session_id, str) and session_id in params.reach_sessions:
        reach_reference(session_id, layout)
        return
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


def reach_reference(name: str, layout: Layout) -> None:
    """Wiener, Kalman and (twin) ideal decoder on reaching session `name`."""
    data = load_reach(layout.reach_split_dir(name), name)
    truth_path = layout.reach_truth(name)
    truth = read_macaque_truth(truth_path) if truth_path.exists() else None
    preds, info = decoders.references(data, truth)
    scored = decoders.score(data, preds)
    result = {
        "session_id": name,
        "target": data.target_name,
        "n_units": data.n_units,
        "n_test": int(data.rows["test"].size),
        "test": scored,
        "paired": decoders.compare(data, preds),
        **info,
    }
    write_json(layout.reach_metrics("reference", name), result)
    write_csv(decoders.prediction_table(data, preds), layout.reach_predictions("reference", name))
    write_scores(layout.scores(f"reach_reference_{name}"), reach_scores(name, scored))
    log.info("session %s: %s", name, ", ".join(f"{k} R² {v['r2']:.3f}" for k, v in scored.items()))


if __name__ == "__main__":
    run_stage("reference", main)
