"""`<session>.truth.npz`: the generative truth of a macaque twin session.

Written beside the twin's `.mat` by `npdecode.sources.macaque_twin`; read by the ideal
decoder (`npdecode.reaching.ideal`). Real sessions have no truth file.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from npdecode.formats.files import corrupt, read_npz, write_npz


@dataclass(frozen=True)
class MacaqueTruth:
    """Each sorted unit's tuning in one session, and each channel's threshold crossings'.

    A unit's rate (Hz) at time t is `exp(baseline + coef . f(t + lead_s))`, with
    f = [vx / v_ref, vy / v_ref, px / p_ref, py / p_ref, speed / v_ref] (mm, mm/s).

    Attributes:
        neuron_id: (U,) the monkey's neuron behind each unit (the same id in two sessions
            is the same neuron), in the reader's sorted-unit order (by row, then channel
            is NOT guaranteed: match with `channel` and `row`).
        channel: (U,) channel index; row: (U,) row of `spikes` (1..).
        baseline: (U,) log rate; coef: (U, 5); lead_s: (U,) s.
        hash_baseline: (C,) and hash_coef: (C, 5): the unsorted crossings of each channel
            (lead as the channel's area: M1 channels are 0..95).
        v_ref, p_ref: the feature scales.
        fano: (U,) each unit's count variance / mean given its rate (negative binomial
            with p = 1 / fano, whatever the bin); loading: (U,) its weight on the shared
            log gain, so its rate is `exp(baseline + coef . f + loading * g(t))`.
        gain_sd, gain_tau_s: the shared log gain g, a stationary Ornstein-Uhlenbeck
            process (sd, timescale s).
        reach: (len(REACH_KEYS),) the behaviour model (`npdecode.sources.macaque_twin`).
    """

    neuron_id: np.ndarray
    channel: np.ndarray
    row: np.ndarray
    baseline: np.ndarray
    coef: np.ndarray
    lead_s: np.ndarray
    hash_baseline: np.ndarray
    hash_coef: np.ndarray
    v_ref: float
    p_ref: float
    fano: np.ndarray
    loading: np.ndarray
    gain_sd: float
    gain_tau_s: float
    reach: np.ndarray

    def reach_params(self) -> dict[str, float]:
        """The behaviour model by name (`REACH_KEYS`)."""
        return dict(zip(REACH_KEYS, map(float, self.reach), strict=True))


# Behaviour model, in the order of `MacaqueTruth.reach`: target grid spacing (mm), reaction
# and hold time ranges (s), reach duration = move_base_s + distance / move_speed_mm_s, rest
# probability and mean (s), long-rest probability and range (s).
REACH_KEYS = (
    "grid_mm", "reaction_lo", "reaction_hi", "hold_lo", "hold_hi", "move_base_s",
    "move_speed_mm_s", "rest_p", "rest_mean_s", "long_rest_p", "long_rest_lo", "long_rest_hi",
)  # fmt: skip
_NAMES = tuple(f.name for f in fields(MacaqueTruth))
PER_UNIT = ("neuron_id", "channel", "row", "baseline", "coef", "lead_s", "fano", "loading")


def in_unit_order(truth: MacaqueTruth, channel: np.ndarray, row: np.ndarray) -> MacaqueTruth:
    """`truth` with its units in the order of (`channel`, `row`), e.g. the reader's
    `unit_channel` and `unit_row`, so column k of the counts is unit k of the truth."""
    where = {
        (int(c), int(w)): k for k, (c, w) in enumerate(zip(truth.channel, truth.row, strict=True))
    }
    try:
        order = np.array(
            [where[(int(c), int(w))] for c, w in zip(channel, row, strict=True)], dtype=np.int64
        )
    except KeyError as e:
        raise ValueError(f"unit (channel, row) {e.args[0]} is not in the truth") from None
    picked: dict[str, Any] = {k: np.asarray(getattr(truth, k))[order] for k in PER_UNIT}
    return replace(truth, **picked)


_SCALARS = ("v_ref", "p_ref", "gain_sd", "gain_tau_s")


def write_macaque_truth(path: str | Path, truth: MacaqueTruth) -> None:
    """Write `truth` to `path` atomically."""
    write_npz(path, **{k: np.asarray(getattr(truth, k)) for k in _NAMES})


def read_macaque_truth(path: str | Path) -> MacaqueTruth:
    """The `MacaqueTruth` at `path` (CRC-checked; every member required)."""
    z = read_npz(path, names=_NAMES)
    for k in _SCALARS:
        if z[k].shape != ():
            raise corrupt(path, f"{k} has shape {z[k].shape}, expected a scalar")
    if z["reach"].shape != (len(REACH_KEYS),):
        raise corrupt(path, f"reach has shape {z['reach'].shape}, expected ({len(REACH_KEYS)},)")
    values: dict[str, Any] = {k: z[k] for k in _NAMES}
    for k in _SCALARS:
        values[k] = float(z[k])
    return MacaqueTruth(**values)
