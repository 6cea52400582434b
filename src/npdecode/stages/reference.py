"""Stage `reference`: chance, the plug-in Poisson decoder and (synthetic) the ideal observer.

These bracket every model: chance from below; the ideal observer, which knows the true
rates, from above; the plug-in Poisson decoder shows what the right model class achieves
when its rates are learned from the same training split.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from npdecode.cli import run_stage
from npdecode.data import SessionData, load_session
from npdecode.errors import DataError
from npdecode.io import read_npz, write_json
from npdecode.metrics import classification_metrics
from npdecode.params import Params
from npdecode.paths import Layout
from npdecode.reference import PoissonPlugin, expected_counts, ideal_observer

PARAMS: tuple[str, ...] = ()
log = logging.getLogger(__name__)


def main(params: Params, session_id: int, root: Path = Path(".")) -> None:
    """Write metrics/reference/<id>.json."""
    layout = Layout(root)
    data = load_session(layout.split_dir(session_id), session_id)
    truth_path = layout.truth(session_id)
    truth = read_npz(truth_path) if truth_path.exists() else None
    result = reference_metrics(data, truth)
    write_json(layout.reference(session_id), result)
    ideal = result["ideal"]["accuracy"] if result["ideal"] else None
    log.info(
        "session %d: chance %.4f, poisson plug-in %.3f, ideal %s",
        session_id,
        result["chance"],
        result["poisson_plugin"]["accuracy"],
        ideal,
    )


def reference_metrics(data: SessionData, truth: dict[str, np.ndarray] | None) -> dict:
    """Reference accuracies on the test split (fractions)."""
    plugin = PoissonPlugin.fit(data.train.X, data.train.y, data.n_classes)
    return {
        "session_id": data.session_id,
        "chance": 1.0 / data.n_classes,
        "n_classes": data.n_classes,
        "n_units": data.n_units,
        "poisson_plugin": classification_metrics(
            plugin.log_posterior(data.test.X), data.test.y, data.n_classes
        ),
        "ideal": ideal_metrics(data, truth) if truth is not None else None,
    }


def ideal_metrics(data: SessionData, truth: dict[str, np.ndarray]) -> dict:
    """The ideal observer on the test split, seeing the same units and bins as the models."""
    col = {int(u): i for i, u in enumerate(truth["unit_ids"])}
    row = {int(f): i for i, f in enumerate(truth["frames"])}
    try:
        units = [col[int(u)] for u in data.unit_ids]
        classes = [row[int(f)] for f in data.frames]
    except KeyError as err:
        raise DataError(
            f"session {data.session_id}: truth.npz does not cover unit/frame {err}"
        ) from err
    rates = truth["rates_hz"][classes][:, :, units]  # (C, S, U) for the model's classes and units
    duration = data.bin_width_s * data.n_bins
    expected = expected_counts(rates, float(truth["step_s"]), duration, data.n_bins)
    log_post = ideal_observer(data.test.X, expected, float(truth["gain_sd"]))
    return classification_metrics(log_post, data.test.y, data.n_classes)


if __name__ == "__main__":
    run_stage("reference", main)
