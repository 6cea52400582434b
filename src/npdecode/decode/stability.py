"""Stability of a reach decoder over days: fitted on day d, used on day d + Δ.

Three arms per pair of one monkey's sessions (d earlier than e), each scored on e's test
rows with R² and its 95 % block-bootstrap interval:

- `fixed`: d's decoder unchanged. Units are matched by persistent id (`unit_ids`): each
  of d's units reads e's unit of the same id; a unit of d absent on e reads zeros (its
  mean after d's normalisation); a unit new on e is ignored. Inputs are normalised with
  d's training statistics and outputs un-z-scored with d's target statistics: nothing is
  fitted on e.
- `readin`: d's core frozen, a new read-in fitted on e's training windows with early
  stopping on e's validation windows (at `multisession.adapt_lr`).
- `retrained`: e's own decoder of the same core (`crossday.shared_vs_single`'s single).

`recovered` = R²(readin) / R²(retrained): where recalibrating the read-in alone recovers
(>= 0.95) what retraining gets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from npdecode.decode import crossday
from npdecode.decode.shared import readin_model
from npdecode.decode.training import fit_batches
from npdecode.formats.reach_split import ReachData
from npdecode.models.multisession import MultiSessionDecoder
from npdecode.params import Params
from npdecode.sources.macaque_sessions import days_apart, session


def recalibrate(model: MultiSessionDecoder, e: ReachData, params: Params) -> MultiSessionDecoder:
    """A new read-in for `e` under `model`'s frozen core, early stopping on e's val rows."""
    new = readin_model(model, e.session_id, e.n_units, params.train.seed)
    opts = crossday.options(params, e, lr=params.multisession.adapt_lr)
    fit_batches(new, crossday.ReachBatches([e]), opts)
    return new.eval()


def stability(
    sessions: list[ReachData],
    singles: dict[str, MultiSessionDecoder],
    ids: dict[str, np.ndarray],
    params: Params,
) -> pd.DataFrame:
    """One row per ordered pair (d earlier than e) of one monkey's sessions: days apart,
    units of d found on e, and each arm's R² [95 %] on e's test rows (module docstring)."""
    rows: list[dict[str, Any]] = []
    ordered = sorted(sessions, key=lambda s: (session(s.session_id).date, s.session_id))
    for i, d in enumerate(ordered):
        for e in ordered[i + 1 :]:
            cols = crossday.match_columns(ids[d.session_id], ids[e.session_id])
            arms = {
                "fixed": crossday.predict(singles[d.session_id], 0, e, norm=(d.mean, d.sd),
                                          target=(d.target_mean, d.target_sd), cols=cols),
                "readin": crossday.predict(recalibrate(singles[d.session_id], e, params), 0, e),
                "retrained": crossday.predict(singles[e.session_id], 0, e),
            }  # fmt: skip
            row: dict[str, Any] = {
                "monkey": session(d.session_id).monkey,
                "day": d.session_id,
                "later": e.session_id,
                "days_apart": days_apart(session(d.session_id), session(e.session_id)),
                "units_kept": float(np.mean(cols >= 0)),
            }
            for arm, pred in arms.items():
                m = crossday.score(e, pred)
                row.update({f"{arm}_r2": m["r2"], f"{arm}_lo": m["r2_lo"], f"{arm}_hi": m["r2_hi"]})
            row["recovered"] = row["readin_r2"] / row["retrained_r2"]
            rows.append(row)
    return pd.DataFrame(rows)
