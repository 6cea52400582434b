"""Stage `clean`: drop units and presentations by explicit, reported rules.

Unit rules (each off when its param is null or empty): spike-sorting quality
(`quality`, `isi_violations_max`, `amplitude_cutoff_max`, `presence_ratio_min`),
brain area (`areas`, shell-style patterns such as `VIS*`), silent units (mean rate over
the presentations below `min_rate_hz`) and abnormal ones (the old pipeline's z-score
thresholds: a bin more than `zscore_max` sds above the unit's mean, or no bin ever above
`zscore_min`). Presentations overlapping `invalid_times` are dropped. These rules use no
labels; everything fitted to data (normalisation, zero-variance units) waits for the
split stage and uses the training split only.
"""

from __future__ import annotations

import fnmatch
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from npdecode.cli import run_stage
from npdecode.errors import DataError
from npdecode.io import write_json, write_parquet
from npdecode.params import CleanParams, Params
from npdecode.paths import Layout
from npdecode.runinfo import measure
from npdecode.tables import META_COLUMNS, unit_columns

PARAMS = ("clean",)
log = logging.getLogger(__name__)


def main(params: Params, session_id: int, root: Path = Path(".")) -> None:
    """Clean session `session_id`: writes the clean table and a report of every drop."""
    layout = Layout(root)
    with measure() as cost:
        binned = pd.read_parquet(layout.binned(session_id))
        units = pd.read_parquet(layout.binned_units(session_id))
        presentations = pd.read_parquet(layout.binned_presentations(session_id))
        clean, report = clean_session(binned, units, presentations, params.clean, session_id)
        write_parquet(clean, layout.clean(session_id), wide=True)
    report.update(session_id=session_id, **cost)
    write_json(layout.clean_report(session_id), report)
    log.info(
        "session %d: kept %d/%d units, %d/%d presentations",
        session_id,
        report["units"]["kept"],
        report["units"]["total"],
        report["presentations"]["kept"],
        report["presentations"]["total"],
    )


def unit_drop_rules(
    units: pd.DataFrame, counts: np.ndarray, seconds: float, params: CleanParams
) -> dict[str, np.ndarray]:
    """Boolean masks (U,) of units each rule drops; `counts` is (rows, U) for those units."""
    rules: dict[str, np.ndarray] = {}
    if params.quality is not None:
        rules["quality"] = units["quality"].to_numpy() != params.quality
    if params.isi_violations_max is not None:
        rules["isi_violations"] = ~(units["isi_violations"].to_numpy() <= params.isi_violations_max)
    if params.amplitude_cutoff_max is not None:
        rules["amplitude_cutoff"] = ~(
            units["amplitude_cutoff"].to_numpy() <= params.amplitude_cutoff_max
        )
    if params.presence_ratio_min is not None:
        rules["presence_ratio"] = ~(units["presence_ratio"].to_numpy() >= params.presence_ratio_min)
    if params.areas:
        areas = units["area"].astype(str).to_numpy()
        rules["area"] = ~np.array(
            [any(fnmatch.fnmatchcase(a, p) for p in params.areas) for a in areas]
        )
    total = counts.sum(axis=0, dtype=np.float64)
    rules["silent"] = total / max(seconds, 1e-12) < params.min_rate_hz
    if params.zscore_max is not None or params.zscore_min is not None:
        z_peak = _peak_zscore(counts)
        if params.zscore_max is not None:
            rules["zscore_high"] = z_peak > params.zscore_max
        if params.zscore_min is not None:
            rules["zscore_low"] = ~(z_peak > params.zscore_min)  # constant units (nan) included
    return rules


def _peak_zscore(counts: np.ndarray) -> np.ndarray:
    """Largest z-score of each unit's per-bin counts (nan for a constant unit)."""
    mean = counts.mean(axis=0, dtype=np.float64)
    sd = counts.std(axis=0, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sd > 0, (counts.max(axis=0) - mean) / sd, np.nan)


def clean_session(
    binned: pd.DataFrame,
    units: pd.DataFrame,
    presentations: pd.DataFrame,
    params: CleanParams,
    session_id: int,
) -> tuple[pd.DataFrame, dict]:
    """Pure core of the stage: (clean table, report)."""
    cols = unit_columns(binned)
    if cols != [str(u) for u in units["unit_id"]]:
        raise DataError(f"session {session_id}: binned table columns do not match the units table")
    drop_pres = _presentation_drops(presentations, params)
    bad_ids = set().union(*drop_pres.values()) if drop_pres else set()
    rows = ~binned["presentation_id"].isin(bad_ids).to_numpy()
    counts = binned.loc[rows, cols].to_numpy()
    durations = presentations.loc[~presentations["presentation_id"].isin(bad_ids)]
    seconds = float((durations["stop_time"] - durations["start_time"]).sum())
    rules = unit_drop_rules(units, counts, seconds, params)
    dropped = np.zeros(len(cols), bool)
    unit_report = {}
    for name, mask in rules.items():  # a unit is reported under the first rule that drops it
        new = mask & ~dropped
        unit_report[name] = {"n": int(new.sum()), "ids": units["unit_id"].to_numpy()[new].tolist()}
        dropped |= mask
    keep_cols = [c for c, d in zip(cols, dropped, strict=True) if not d]
    if not keep_cols:
        raise DataError(
            f"session {session_id}: clean dropped every unit ({ {k: v['n'] for k, v in unit_report.items()} })"
        )
    clean = binned.loc[rows, [*META_COLUMNS, *keep_cols]].reset_index(drop=True)
    report = {
        "units": {"total": len(cols), "kept": len(keep_cols), "dropped": unit_report},
        "presentations": {
            "total": len(presentations),
            "kept": int(len(presentations) - len(bad_ids)),
            "dropped": {k: {"n": len(v), "ids": sorted(v)} for k, v in drop_pres.items()},
        },
    }
    return clean, report


def _presentation_drops(presentations: pd.DataFrame, params: CleanParams) -> dict[str, set[int]]:
    ids = presentations["presentation_id"].to_numpy()
    drops = {"no_frame": set(ids[presentations["frame"].isna().to_numpy()].tolist())}
    if params.drop_invalid_presentations:
        drops["invalid_times"] = (
            set(ids[presentations["overlaps_invalid"].to_numpy()].tolist()) - drops["no_frame"]
        )
    return drops


if __name__ == "__main__":
    run_stage("clean", main)
