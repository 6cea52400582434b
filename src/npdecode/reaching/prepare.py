"""One reaching session from its `.mat` contents to decoder-ready arrays (pure; no I/O).

Counts (`bins.bin_counts`), per-bin kinematics (`bins.bin_targets` of `np.gradient`
velocity and acceleration), and the contiguous block split (`blocks.split`; bins in the
recording's unobserved gaps excluded). The caller reads the file
(`npdecode.mat.read.read_mat`, or `npdecode.nwb.nlb.read_nlb`) and writes what it needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from npdecode.mat.read import Reaching, kinematics
from npdecode.reaching import bins, blocks


@dataclass(frozen=True)
class Prepared:
    """Binned session.

    counts: (B, U) spike counts; pos, vel, acc: (B, 2) per-bin means; rows: split name ->
    indices of bins whose history window lies in that split; report: what the split
    excluded (`blocks.split`); width_s, history: the bin width and window length.
    """

    counts: np.ndarray
    pos: np.ndarray
    vel: np.ndarray
    acc: np.ndarray
    rows: dict[str, np.ndarray]
    report: dict[str, Any]
    width_s: float
    history: int

    def target(self, name: str) -> np.ndarray:
        """(B, 2) "position", "velocity" or "acceleration"."""
        return {"position": self.pos, "velocity": self.vel, "acceleration": self.acc}[name]


def prepare(
    r: Reaching,
    width_s: float,
    history: int,
    roles: Sequence[str] = blocks.DEFAULT_ROLES,
    still_speed: float = 10.0,
    still_min_s: float = 10.0,
) -> Prepared:
    """Bin `r` into `width_s` bins and split it (see `blocks.split` for the arguments)."""
    counts = bins.bin_counts(r.spike_times, r.t, width_s)
    vel, acc = kinematics(r.t, r.cursor_pos)
    pos_b, vel_b, acc_b = (bins.bin_targets(a, width_s) for a in (r.cursor_pos, vel, acc))
    speed = np.linalg.norm(vel_b, axis=1)
    gaps = None  # a .mat is one continuous recording; an NLB file may have gaps
    if r.unobserved.size:
        gaps = bins.overlapping(r.unobserved, float(r.t[0]), counts.shape[0], width_s)
    rows, report = blocks.split(speed, width_s, history, roles, still_speed, still_min_s, gaps)
    return Prepared(counts, pos_b, vel_b, acc_b, rows, report, width_s, history)
