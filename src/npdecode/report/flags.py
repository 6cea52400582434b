"""Sessions that decode near chance, the likely causes checked from their data, and
per-model medians over sessions with and without them.

A session is flagged when its best model's test accuracy is below
`report.flags.near_chance` × chance. Each cause is a check of a measured fact (written by
the neurometric stage, analyses/diagnostics.py, and the model metrics) against a
threshold in `report.flags`; every session gets every check in results/flags.csv, so an
unflagged session with a warning shows too. A third-party pipeline kept a session at
chance (754312389) in its medians: the medians table gives both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from npdecode.formats.files import read_json
from npdecode.params import FlagParams, SessionId, session_id_of
from npdecode.paths import Layout


@dataclass(frozen=True)
class Check:
    """A likely cause: its name, the fact it reads, when it fails, and what it means."""

    name: str
    fact: str
    fails: Callable[[float, FlagParams], bool]
    says: str  # formatted with the fact's value as {v}


CHECKS = (
    Check(
        "few_visual_units",
        "n_visual_units",
        lambda v, p: v < p.min_visual_units,
        "few visual units ({v:.0f} in LGd, LP, VIS*)",
    ),
    Check(
        "low_rates",
        "median_rate_hz",
        lambda v, p: v < p.min_rate_hz,
        "low firing rates (median {v:.2f} Hz during presentations): a silent or failed recording",
    ),
    Check(
        "unselective",
        "selective_fraction",
        lambda v, p: v < p.min_selective_fraction,
        "few image-selective units ({v:.1%}): spikes not locked to the stimulus table "
        "(a timing or processing fault) or a failed recording",
    ),
    Check(
        "presentations_dropped",
        "presentations_dropped_fraction",
        lambda v, p: v > p.max_presentations_dropped,
        "{v:.1%} of presentations dropped by clean (invalid times, no frame)",
    ),
    Check(
        "units_dropped",
        "units_dropped_fraction",
        lambda v, p: v > p.max_units_dropped,
        "{v:.1%} of units dropped by clean",
    ),
    Check(
        "invalid_spikes",
        "invalid_spike_fraction",
        lambda v, p: v > p.max_invalid_spikes,
        "{v:.1%} of spikes inside invalid_times",
    ),
)
FLAG_COLUMNS = [
    "session_id",
    "specimen_id",
    "best_model",
    "best_accuracy",
    "best_train_accuracy",
    "chance",
    "ratio_to_chance",
    "near_chance",
    "causes",
    *(c.fact for c in CHECKS),
]


def session_facts(layout: Layout, session_id: SessionId) -> dict | None:
    """The diagnostics the neurometric stage measured for a session (None if not run)."""
    path = layout.neurometric(session_id)
    return read_json(path).get("diagnostics") if path.exists() else None


def causes(
    facts: dict | None, near: bool, train_accuracy: float, chance: float, p: FlagParams
) -> list[str]:
    """The checks a session fails, as sentences (for a near-chance session: why)."""
    if facts is None:
        return ["no diagnostics (run the neurometric stage for this session)"]
    failed = [c for c in CHECKS if c.fails(facts[c.fact], p)]
    out = [c.says.format(v=facts[c.fact]) for c in failed]
    # a good fit of the training split means drift only when the units carry the image:
    # without image-selective units it is memorised noise
    selective = all(c.name != "unselective" for c in failed)
    fits = np.isfinite(train_accuracy) and train_accuracy >= p.near_chance * chance
    if near and fits and selective:
        out.append(
            f"the best model fits its training split ({train_accuracy:.3f}) but does not "
            "generalise to held-out presentations: drift, a nonstationary recording, overfitting"
        )
    if near and not out:
        out.append("none of the checks: inspect the processing (a pipeline fault?)")
    return out


def flags_table(
    summary: pd.DataFrame,
    facts: dict[SessionId, dict | None],
    train_accuracy: dict[SessionId, float],
    p: FlagParams,
) -> pd.DataFrame:
    """One row per session: its best model, whether it decodes near chance, and every check.

    `summary` is the report's session × model table; `train_accuracy` the best model's
    training-split accuracy per session (nan if unknown).
    """
    rows = []
    if summary.empty:
        return pd.DataFrame(columns=FLAG_COLUMNS)
    best = summary.loc[summary.groupby("session_id")["accuracy"].idxmax()]
    for row in best.itertuples():
        sid = session_id_of(row.session_id)
        f = facts.get(sid)
        near = bool(row.accuracy < p.near_chance * row.chance)
        train = train_accuracy.get(sid, np.nan)
        found = causes(f, near, train, row.chance, p)
        rows.append(
            {
                "session_id": sid,
                "specimen_id": row.specimen_id,
                "best_model": row.model,
                "best_accuracy": row.accuracy,
                "best_train_accuracy": train,
                "chance": row.chance,
                "ratio_to_chance": row.accuracy / row.chance,
                "near_chance": near,
                "causes": "; ".join(found),
                **{c.fact: (f or {}).get(c.fact, np.nan) for c in CHECKS},
            }
        )
    return pd.DataFrame(rows, columns=FLAG_COLUMNS)


def best_train_accuracy(layout: Layout, summary: pd.DataFrame) -> dict[SessionId, float]:
    """Training-split accuracy of each session's best model, from its metrics JSON."""
    out: dict[SessionId, float] = {}
    if summary.empty:
        return out
    best = summary.loc[summary.groupby("session_id")["accuracy"].idxmax()]
    for sid, model in zip(best["session_id"], best["model"], strict=True):
        m = read_json(layout.metrics(model, int(sid)))
        out[int(sid)] = float(m.get("train", {}).get("accuracy", np.nan))
    return out


def medians_table(summary: pd.DataFrame, flags: pd.DataFrame) -> pd.DataFrame:
    """Per model: median test accuracy over sessions, with and without near-chance ones."""
    flagged = set(flags.loc[flags["near_chance"], "session_id"])
    rows = []
    for model, part in summary.groupby("model", sort=False):
        kept = part[~part["session_id"].isin(flagged)]
        best = part.loc[part["accuracy"].idxmax()]
        rows.append(
            {
                "model": model,
                "n_sessions": len(part),
                "median_accuracy": part["accuracy"].median(),
                "n_near_chance": len(part) - len(kept),
                "median_without_near_chance": kept["accuracy"].median() if len(kept) else np.nan,
                "best_accuracy": best["accuracy"],
                "best_session": session_id_of(best["session_id"]),
                "worst_accuracy": part["accuracy"].min(),
            }
        )
    return pd.DataFrame(rows)


def flags_section(flags: pd.DataFrame, p: FlagParams) -> dict:
    """The report JSON's account of near-chance sessions and their likely causes."""
    near = flags[flags["near_chance"]]
    return {
        "near_chance_ratio": p.near_chance,
        "n_sessions": len(flags),
        "n_near_chance": len(near),
        "sessions": [
            {
                "session_id": session_id_of(r.session_id),
                "best_model": r.best_model,
                "best_accuracy": float(r.best_accuracy),
                "chance": float(r.chance),
                "causes": r.causes.split("; ") if r.causes else [],
            }
            for r in near.itertuples()
        ],
    }
