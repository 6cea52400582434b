"""What a session's data say about why it might decode poorly, measured, never guessed.

Facts per session (and per area): units in visual areas, firing rates during the
presentations, the fraction of units whose spike counts differ between images (one-way
ANOVA across classes, p < `SELECTIVE_P`), what the clean stage dropped, and how many
spikes fell inside `invalid_times`. The report compares them with `report.flags` to list
the likely causes of a session that decodes near chance: few visual units, a silent or
failed recording, spikes that do not follow the stimulus table (a timing fault), or
presentations and units lost in processing.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from npdecode.areas import area_order, is_visual
from npdecode.formats.split import SessionData

SELECTIVE_P = 0.01  # a unit is image-selective when its ANOVA across images has p below this


def anova_pvalues(counts: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(U,) p-values of a one-way ANOVA of each unit's (P, U) counts across the classes `y`.

    A unit whose counts never vary within a class gets p = 0 if its class means differ,
    else 1 (a silent unit).
    """
    x = counts.astype(np.float64)
    classes, yi = np.unique(y, return_inverse=True)
    k, n = len(classes), len(y)
    if k < 2 or n <= k:
        return np.ones(x.shape[1])
    size = np.bincount(yi, minlength=k).astype(np.float64)  # (C,)
    means = np.zeros((k, x.shape[1]))
    np.add.at(means, yi, x)
    means /= size[:, None]  # (C, U)
    between = (size[:, None] * (means - x.mean(axis=0)) ** 2).sum(axis=0)  # (U,)
    within = ((x - means[yi]) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (between / (k - 1)) / (within / (n - k))
    p = stats.f.sf(f, k - 1, n - k)
    return np.where(within > 0, p, np.where(between > 0, 0.0, 1.0))


def _all_presentations(data: SessionData) -> tuple[np.ndarray, np.ndarray]:
    """(P, U) summed counts and (P,) classes of every split together."""
    parts = (data.train, data.val, data.test)
    counts = np.concatenate([s.X.sum(axis=1, dtype=np.int64) for s in parts])  # (P, T, U) -> (P, U)
    return counts, np.concatenate([s.y for s in parts])


def _summary(rates: np.ndarray, selective: np.ndarray) -> dict:
    return {
        "n_units": int(len(rates)),
        "median_rate_hz": float(np.median(rates)) if len(rates) else 0.0,
        "selective_fraction": float(selective.mean()) if len(rates) else 0.0,
    }


def session_diagnostics(data: SessionData, clean_report: dict, bin_report: dict) -> dict:
    """Facts about one session's data (from its split, clean and bin reports)."""
    counts, y = _all_presentations(data)
    rates = counts.mean(axis=0) / (data.n_bins * data.bin_width_s)  # (U,) Hz in presentations
    selective = anova_pvalues(counts, y) < SELECTIVE_P
    areas = data.units["area"].astype(str).to_numpy()
    visual = np.array([is_visual(a) for a in areas], dtype=bool)
    units = clean_report["units"]
    pres = clean_report["presentations"]
    n_spikes = int(bin_report.get("n_spikes", 0))
    invalid = int(bin_report.get("invalid_spikes_removed", {}).get("total", 0))
    return {
        **_summary(rates, selective),
        "n_visual_units": int(visual.sum()),
        "visual": _summary(rates[visual], selective[visual]),
        "selective_p": SELECTIVE_P,
        "presentations_total": int(pres["total"]),
        "presentations_dropped_fraction": 1.0 - pres["kept"] / max(pres["total"], 1),
        "presentations_dropped": {k: int(v["n"]) for k, v in pres["dropped"].items()},
        "units_total": int(units["total"]),
        "units_dropped_fraction": 1.0 - units["kept"] / max(units["total"], 1),
        "units_dropped": {k: int(v["n"]) for k, v in units["dropped"].items()},
        "invalid_spike_fraction": invalid / n_spikes if n_spikes else 0.0,
        # a list, not a dict: `dvc exp show` leaves lists out of its columns
        "areas": [
            {"area": a, **_summary(rates[areas == a], selective[areas == a])}
            for a in area_order(areas)
        ],
    }
