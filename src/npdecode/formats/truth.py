"""`truth.npz`: the ground truth saved beside a synthetic session's NWB.

The true rate of every unit for every image lets `npdecode.reference.ideal_observer`
compute the Bayes-optimal accuracy on any test set. Real sessions have no truth file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from npdecode.formats.files import read_npz


@dataclass(frozen=True)
class SyntheticTruth:
    """Ground truth of a synthetic session.

    Attributes:
        rates_hz: (C, S, U) float32, rate of each unit during step s of a presentation of
            class c, before the per-presentation gain. Class 0 is the blank.
        frames: (C,) int, the Allen `frame` of each class (-1 = blank).
        unit_ids: (U,) int64 unit ids, in the column order of `rates_hz`.
        baseline_hz: (U,) spontaneous rate, outside presentations.
        step_s: width of a rate step (s); S * step_s is the presentation duration.
        gain_sd: sd of log gain; gain ~ LogNormal(-gain_sd**2 / 2, gain_sd) per presentation.
    """

    rates_hz: np.ndarray
    frames: np.ndarray
    unit_ids: np.ndarray
    baseline_hz: np.ndarray
    step_s: float
    gain_sd: float


def write_truth(path: str | Path, t: SyntheticTruth, gains: np.ndarray) -> None:
    """Write the truth (and the gain drawn for each presentation, `gains`) to `path`."""
    with open(path, "wb") as fh:
        np.savez(
            fh,
            rates_hz=t.rates_hz,
            frames=t.frames,
            unit_ids=t.unit_ids,
            baseline_hz=t.baseline_hz,
            step_s=np.float64(t.step_s),
            gain_sd=np.float64(t.gain_sd),
            presentation_gain=gains,
        )


def read_truth(path: str | Path) -> SyntheticTruth:
    """The `SyntheticTruth` saved by `write_truth`."""
    names = ("rates_hz", "frames", "unit_ids", "baseline_hz", "step_s", "gain_sd")
    z = read_npz(path, (*names, "presentation_gain"))  # CRC-checked, every member present
    return SyntheticTruth(
        rates_hz=z["rates_hz"],
        frames=z["frames"],
        unit_ids=z["unit_ids"],
        baseline_hz=z["baseline_hz"],
        step_s=float(z["step_s"]),
        gain_sd=float(z["gain_sd"]),
    )
