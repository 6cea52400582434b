"""Near-chance flags: causes checked from measured facts; medians with and without them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from npdecode.params import FlagParams
from npdecode.report.flags import CHECKS, flags_section, flags_table, medians_table

CHANCE = 1 / 119
GOOD = {
    "n_visual_units": 400,
    "median_rate_hz": 5.0,
    "selective_fraction": 0.6,
    "presentations_dropped_fraction": 0.01,
    "units_dropped_fraction": 0.1,
    "invalid_spike_fraction": 0.01,
}


def _summary(acc: dict[int, dict[str, float]]) -> pd.DataFrame:
    rows = [
        {"session_id": s, "specimen_id": f"m{s}", "model": m, "accuracy": a, "chance": CHANCE}
        for s, models in acc.items()
        for m, a in models.items()
    ]
    return pd.DataFrame(rows)


def test_near_chance_sessions_are_flagged_with_their_measured_causes() -> None:
    summary = _summary(
        {
            1: {"logreg": 0.4, "lstm": 0.8},  # fine
            2: {"logreg": 0.01, "lstm": 0.02},  # near chance, few visual units and silent
            3: {"logreg": 0.009, "lstm": 0.012},  # near chance, nothing measured explains it
            4: {"logreg": 0.02, "lstm": 0.01},  # near chance, fits train but not test
            5: {"logreg": 0.5},  # fine, but many presentations dropped: a warning
            6: {"logreg": 0.008},  # near chance, no selective units: train fit is memorised
        }
    )
    facts = {
        1: GOOD,
        2: {**GOOD, "n_visual_units": 3, "median_rate_hz": 0.1},
        3: GOOD,
        4: GOOD,
        5: {**GOOD, "presentations_dropped_fraction": 0.4},
        6: {**GOOD, "selective_fraction": 0.005},
    }
    train = {1: 0.95, 2: 0.02, 3: 0.01, 4: 0.9, 5: 0.7, 6: 0.4}
    flags = flags_table(summary, facts, train, FlagParams(near_chance=5.0))
    assert flags["near_chance"].tolist() == [False, True, True, True, False, True]
    assert flags.set_index("session_id").loc[1, "best_model"] == "lstm"
    assert flags["best_accuracy"].tolist() == [0.8, 0.02, 0.012, 0.02, 0.5, 0.008]
    causes = dict(zip(flags["session_id"], flags["causes"], strict=True))
    assert causes[1] == ""
    assert "few visual units (3 in LGd, LP, VIS*)" in causes[2]
    assert "low firing rates (median 0.10 Hz" in causes[2]
    assert "none of the checks" in causes[3]
    assert "does not generalise" in causes[4] and "0.900" in causes[4]
    assert causes[5] == "40.0% of presentations dropped by clean (invalid times, no frame)"
    assert causes[6].startswith("few image-selective units (0.5%)")
    assert "generalise" not in causes[6]
    for check in CHECKS:  # every fact is a column, for every session
        assert flags[check.fact].notna().all()

    section = flags_section(flags, FlagParams())
    assert section["n_near_chance"] == 4 and section["n_sessions"] == 6
    assert [s["session_id"] for s in section["sessions"]] == [2, 3, 4, 6]
    assert len(section["sessions"][0]["causes"]) == 2


def test_a_session_without_diagnostics_says_so() -> None:
    flags = flags_table(_summary({7: {"logreg": 0.01}}), {7: None}, {}, FlagParams())
    assert bool(flags["near_chance"].iloc[0])
    assert "run the neurometric stage" in flags["causes"].iloc[0]
    assert np.isnan(flags["selective_fraction"].iloc[0])


def test_medians_with_and_without_near_chance_sessions() -> None:
    summary = _summary(
        {1: {"lstm": 0.9, "logreg": 0.7}, 2: {"lstm": 0.8, "logreg": 0.6}, 3: {"lstm": 0.01}}
    )
    flags = flags_table(summary, dict.fromkeys((1, 2, 3), GOOD), {}, FlagParams())
    medians = medians_table(summary, flags).set_index("model")
    assert medians.loc["lstm", "median_accuracy"] == pytest.approx(0.8)
    assert medians.loc["lstm", "median_without_near_chance"] == pytest.approx(0.85)
    assert medians.loc["lstm", "n_near_chance"] == 1 and medians.loc["lstm", "n_sessions"] == 3
    assert medians.loc["lstm", "best_session"] == 1
    assert medians.loc["logreg", "median_accuracy"] == pytest.approx(0.65)
    assert medians.loc["logreg", "n_near_chance"] == 0
