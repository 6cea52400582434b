"""Neurometric curves: decoding accuracy per brain area vs number of units, and vs time.

For every brain area of a session with at least `min(neurometric.units)` units, and for
all its units together (the group `all`):

- units: for each n in `neurometric.units` below the area's size, `subsets` random subsets
  of n of the area's units, each drawn without replacement from a seed fixed by
  (`seed`, area, n, subset); every subset is decoded by `neurometric.model` (trained
  exactly as its train stage trains it: `decoders.train_model`, validation split for
  early stopping) and scored on the test split; then the area's units all together;
- time: all of the area's units, decoded from the first m bins of each presentation
  (m in `first_bins`, and every bin, the full-window decoder) and, with `window_bins`,
  from a window of that many bins sliding by one bin.

Each accuracy carries a 95 % percentile-bootstrap interval over test presentations (and,
for subsets, over the subsets too, so it covers the choice of units). Areas with fewer
units than the smallest n are skipped and counted, never an error; an area that
`neurometric.areas` names and the session lacks is one.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable
from contextlib import nullcontext

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from npdecode.areas import area_order
from npdecode.decode.session import eval_batch, split_logits, train_model
from npdecode.errors import DataError
from npdecode.formats.split import SessionData
from npdecode.params import NeurometricParams, SessionId, TrainParams

log = logging.getLogger(__name__)
ALL = "all"  # the group of every unit of the session
LEVEL = 0.95

# (unit column indices, (start bin, stop bin)) -> (P_test,) bool: test presentations decoded right
Scorer = Callable[[np.ndarray, tuple[int, int]], np.ndarray]


def make_scorer(data: SessionData, model: str, train: TrainParams) -> Scorer:
    """Train `model` on `data` seen through some units and bins and score it on test.

    Results are cached by (units, bins), so a view asked twice (the full-window decoder of
    the unit curve and of the time course) is fitted once.
    """
    cache: dict[tuple[bytes, tuple[int, int]], np.ndarray] = {}

    def score(units: np.ndarray, bins: tuple[int, int]) -> np.ndarray:
        key = (np.asarray(units, dtype=np.int64).tobytes(), bins)
        if key not in cache:
            view = data.select(units, bins)
            # hundreds of small lbfgs fits: on a busy 2-core machine the default session's
            # stage took 30 CPU-s with one BLAS/OpenMP thread per fit, 137 with two
            with threadpool_limits(1) if model == "logreg" else nullcontext():
                net, _ = train_model(model, view, train)
                logits = split_logits(net, view, "test", eval_batch(model, train))
            cache[key] = logits.argmax(axis=1) == view.test.y
        return cache[key]

    return score


def cell_rng(seed: int, area: str, *keys: int) -> np.random.Generator:
    """A generator for one cell of the analysis, fixed by (seed, area, keys) alone, so adding
    an area or a size never changes the draws of another."""
    name = list(area.encode())
    return np.random.default_rng(np.random.SeedSequence([seed, len(name), *name, *keys]))


def area_columns(
    units: pd.DataFrame, patterns: tuple[str, ...], session_id: SessionId
) -> dict[str, np.ndarray]:
    """Column indices of each area's units (ascending): `all` first, then every area (or
    those matching `patterns`, fnmatch-style) in display order.

    Raises:
        DataError: if the units table has no `area` column, or a pattern matches no area.
    """
    if "area" not in units:
        raise DataError(f"session {session_id}: the split's units.parquet has no 'area' column")
    areas = units["area"].astype(str).to_numpy()
    names = area_order(np.unique(areas))
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(a, pattern) for a in names):
            raise DataError(
                f"session {session_id} has no units in area {pattern!r}, which "
                f"neurometric.areas asks for; its areas: {', '.join(names)}"
            )
    if patterns:
        names = [a for a in names if any(fnmatch.fnmatchcase(a, p) for p in patterns)]
    return {ALL: np.arange(len(areas)), **{a: np.flatnonzero(areas == a) for a in names}}


def draw_subsets(n_area: int, n: int, count: int, seed: int, area: str) -> np.ndarray:
    """(count, n) sorted column positions within an area of `n_area` units: each row n
    distinct units (drawn without replacement), row s from the seed of (seed, area, n, s)."""
    if not 0 < n <= n_area:
        raise ValueError(f"cannot draw {n} of {n_area} units")
    return np.stack(
        [
            np.sort(cell_rng(seed, area, 0, n, s).choice(n_area, n, replace=False))
            for s in range(count)
        ]
    )


def interval(correct: np.ndarray, n_boot: int, rng: np.random.Generator) -> dict[str, float]:
    """Mean accuracy of (S, P) right/wrong test outcomes (S subsets of units) and its 95 %
    percentile-bootstrap interval, resampling presentations and subsets together."""
    correct = np.atleast_2d(correct).astype(np.float64)
    s, p = correct.shape
    pres = rng.integers(0, p, (n_boot, p))
    subsets = rng.integers(0, s, (n_boot, s))
    # weight of each presentation in each resample: (n_boot, P)
    weight = np.bincount((np.arange(n_boot)[:, None] * p + pres).ravel(), minlength=n_boot * p)
    hits = correct @ weight.reshape(n_boot, p).T / p  # (S, n_boot) accuracy per subset
    boot = hits[subsets, np.arange(n_boot)[:, None]].mean(axis=1)  # (n_boot,)
    lo, hi = np.quantile(boot, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return {"accuracy": float(correct.mean()), "ci_low": float(lo), "ci_high": float(hi)}


def unit_curve(
    score: Scorer,
    columns: np.ndarray,
    area: str,
    n_bins: int,
    p: NeurometricParams,
) -> list[dict]:
    """Accuracy vs number of units of one area: each listed n below its size, then all."""
    full = (0, n_bins)
    rows = []
    for n in (n for n in p.units if n < len(columns)):
        draws = draw_subsets(len(columns), n, p.subsets, p.seed, area)
        correct = np.stack([score(columns[d], full) for d in draws])  # (S, P)
        rows.append(
            {
                "n": n,
                "all": False,
                **interval(correct, p.bootstrap, cell_rng(p.seed, area, 1, n)),
                "subsets": correct.mean(axis=1).tolist(),
            }
        )
    correct = score(columns, full)[None]
    rows.append(
        {
            "n": len(columns),
            "all": True,
            **interval(correct, p.bootstrap, cell_rng(p.seed, area, 1, 0)),
            "subsets": correct.mean(axis=1).tolist(),
        }
    )
    return rows


def time_windows(
    n_bins: int, first_bins: tuple[int, ...], window_bins: int | None
) -> dict[str, list[tuple[int, int]]]:
    """The [start, stop) bin windows of the time course: the first m bins (each listed m
    below n_bins, and all bins), and a window of `window_bins` sliding by one bin."""
    first = [(0, m) for m in sorted({m for m in first_bins if m < n_bins} | {n_bins})]
    if window_bins is None or window_bins >= n_bins:
        return {"first": first, "window": []}
    return {
        "first": first,
        "window": [(s, s + window_bins) for s in range(n_bins - window_bins + 1)],
    }


def time_course(
    score: Scorer,
    columns: np.ndarray,
    area: str,
    n_bins: int,
    bin_width_s: float,
    p: NeurometricParams,
) -> dict:
    """Accuracy of all of an area's units from the first bins and in sliding windows."""
    out: dict = {}
    for kind, windows in time_windows(n_bins, p.first_bins, p.window_bins).items():
        rows = []
        for start, stop in windows:
            rng = cell_rng(p.seed, area, 2 if kind == "first" else 3, start, stop)
            rows.append(
                {
                    "start_bin": start,
                    "stop_bin": stop,
                    "start_s": start * bin_width_s,
                    "stop_s": stop * bin_width_s,
                    **interval(score(columns, (start, stop))[None], p.bootstrap, rng),
                }
            )
        out[kind] = rows
    return out


def half_max_time(first: list[dict], chance: float) -> float | None:
    """When accuracy from the first bins reaches halfway from chance to the full-window
    accuracy (s after onset, linear between windows, from chance at onset); None when
    the full window does not decode (its interval reaches chance)."""
    full = first[-1]
    if full["ci_low"] <= chance:
        return None
    half = chance + 0.5 * (full["accuracy"] - chance)
    t = [0.0, *(r["stop_s"] for r in first)]
    a = [chance, *(r["accuracy"] for r in first)]
    for i in range(1, len(t)):
        if a[i] >= half:
            return t[i - 1] + (half - a[i - 1]) / (a[i] - a[i - 1]) * (t[i] - t[i - 1])
    return None  # unreachable: the last window is the full one


def neurometric(data: SessionData, p: NeurometricParams, train: TrainParams) -> dict:
    """Unit curves and time courses of every area of one session (the stage's metrics)."""
    score = make_scorer(data, p.model, train)
    chance = 1.0 / data.n_classes
    areas: dict[str, dict] = {}
    skipped: dict[str, int] = {}
    for area, columns in area_columns(data.units, p.areas, data.session_id).items():
        if len(columns) < p.units[0]:
            skipped[area] = len(columns)
            continue
        units = unit_curve(score, columns, area, data.n_bins, p)
        time = time_course(score, columns, area, data.n_bins, data.bin_width_s, p)
        half = half_max_time(time["first"], chance)
        full = units[-1]
        areas[area] = {
            "n_units": len(columns),
            "accuracy": full["accuracy"],
            "ci_low": full["ci_low"],
            "ci_high": full["ci_high"],
            "half_max_s": half,
            "units": units,
            "time": time,
        }
        log.info(
            "session %d %s (%d units): %.3f [%.3f, %.3f], half-max at %s",
            data.session_id,
            area,
            len(columns),
            full["accuracy"],
            full["ci_low"],
            full["ci_high"],
            "-" if half is None else f"{1000 * half:.0f} ms",
        )
    if skipped:
        log.info(
            "session %d: skipped areas below %d units: %s", data.session_id, p.units[0], skipped
        )
    return {
        "session_id": data.session_id,
        "specimen_id": data.specimen_id,
        "model": p.model,
        "chance": chance,
        "n_classes": data.n_classes,
        "n_test": len(data.test),
        "n_bins": data.n_bins,
        "bin_width_s": data.bin_width_s,
        "subsets": p.subsets,
        "seed": p.seed,
        "areas": areas,
        "skipped": {"n": len(skipped), "min_units": p.units[0], "areas": skipped},
    }
