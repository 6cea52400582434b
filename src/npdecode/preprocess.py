"""Preparing a binned session for decoding: pure functions on arrays and tables, no I/O.

- clean: unit and presentation drop rules (quality metrics, areas, silent units, the old
  pipeline's z-score thresholds, presentations overlapping invalid times), each reported;
- split: labels from frames, the stratified time-ordered (or random) train/val/test split,
  per-unit statistics and the ST-GAT unit graph from the training split only.

Clean rules use no labels; everything fitted to data waits for the split and sees only
its training part (so no test information leaks into a model or its inputs).
"""

from __future__ import annotations

import fnmatch

import numpy as np
import pandas as pd

from npdecode.errors import DataError
from npdecode.formats.binned import Counts
from npdecode.formats.split import SPLITS, SessionData, Split
from npdecode.params import CleanParams, GraphParams, Params, SessionId, SplitParams

CCF = (
    "anterior_posterior_ccf_coordinate",
    "dorsal_ventral_ccf_coordinate",
    "left_right_ccf_coordinate",
)


# --- clean ------------------------------------------------------------------------------


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
    binned: Counts,
    units: pd.DataFrame,
    presentations: pd.DataFrame,
    params: CleanParams,
    session_id: SessionId,
) -> tuple[Counts, dict]:
    """Pure core of the stage: (clean counts, report)."""
    if not np.array_equal(binned.unit_id, units["unit_id"].to_numpy()):
        raise DataError(f"session {session_id}: binned counts' units do not match the units table")
    drop_pres = _presentation_drops(presentations, params)
    bad_ids = set().union(*drop_pres.values()) if drop_pres else set()
    if len(bad_ids) >= len(presentations):
        raise DataError(
            f"session {session_id}: clean dropped every presentation "
            f"({ {k: len(v) for k, v in drop_pres.items()} }): "
            + "; ".join(_NO_PRESENTATION_FIX[k] for k, v in drop_pres.items() if v)
        )
    rows = ~np.isin(binned.presentation_id, np.array(sorted(bad_ids), dtype=np.int64))
    n_units = binned.by_unit.shape[0]
    kept = binned.by_unit if rows.all() else binned.by_unit[:, rows]  # (U, P', T)
    counts = kept.reshape(n_units, -1).T  # (U, P', T) -> (P'*T, U), a view
    durations = presentations.loc[~presentations["presentation_id"].isin(bad_ids)]
    seconds = float((durations["stop_time"] - durations["start_time"]).sum())
    rules = unit_drop_rules(units, counts, seconds, params)
    dropped = np.zeros(n_units, bool)
    unit_report = {}
    for name, mask in rules.items():  # a unit is reported under the first rule that drops it
        new = mask & ~dropped
        unit_report[name] = {"n": int(new.sum()), "ids": units["unit_id"].to_numpy()[new].tolist()}
        dropped |= mask
    if dropped.all():
        raise DataError(
            f"session {session_id}: clean dropped every unit "
            f"({ {k: v['n'] for k, v in unit_report.items() if v['n']} }): loosen those "
            "rules in params `clean` (silent: clean.min_rate_hz)"
        )
    clean = Counts(
        kept if not dropped.any() else kept[~dropped],
        binned.presentation_id[rows],
        binned.unit_id[~dropped],
    )
    report = {
        "units": {"total": n_units, "kept": int((~dropped).sum()), "dropped": unit_report},
        "presentations": {
            "total": len(presentations),
            "kept": int(len(presentations) - len(bad_ids)),
            "dropped": {k: {"n": len(v), "ids": sorted(v)} for k, v in drop_pres.items()},
        },
    }
    return clean, report


# What to do when a presentation rule leaves nothing (clean_session's error).
_NO_PRESENTATION_FIX = {
    "no_frame": "no_frame: presentations without a frame label cannot be decoded; check the "
    "file's presentations table (bin.stimulus)",
    "invalid_times": "invalid_times: the session's invalid_times cover these presentations; "
    "set clean.drop_invalid_presentations: false to keep them (their invalid spikes are "
    "removed either way)",
}


def _presentation_drops(presentations: pd.DataFrame, params: CleanParams) -> dict[str, set[int]]:
    ids = presentations["presentation_id"].to_numpy()
    drops = {"no_frame": set(ids[presentations["frame"].isna().to_numpy()].tolist())}
    if params.drop_invalid_presentations:
        drops["invalid_times"] = (
            set(ids[presentations["overlaps_invalid"].to_numpy()].tolist()) - drops["no_frame"]
        )
    return drops


# --- split ------------------------------------------------------------------------------


def labels(frames: np.ndarray, include_blank: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keep mask (P,), class index (P,) for kept rows, class -> frame (C,))."""
    keep = np.ones(len(frames), bool) if include_blank else frames != -1
    classes = np.unique(frames[keep]).astype(np.int64)
    return keep, np.searchsorted(classes, frames[keep]).astype(np.int64), classes


def assign_splits(y: np.ndarray, start_time: np.ndarray, params: SplitParams) -> np.ndarray:
    """Split code per presentation (0 train, 1 val, 2 test), stratified by class.

    `time`: within each class, by start time (earliest train, latest test).
    `random`: within each class, a seeded permutation. Either way each class gets
    round(n * fraction) val and test presentations and at least one training one.
    `last`: not stratified (the lab's old protocol): the last round(P * test_fraction)
    presentations in time test, the round(P * val_fraction) before them validate.
    """
    if params.method == "last":
        code = _last_split(start_time, params)
        _check_not_empty(code, y, params)
        return code
    rng = np.random.default_rng(params.seed)
    code = np.zeros(len(y), np.int8)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if params.method == "time":
            idx = idx[np.argsort(start_time[idx], kind="stable")]
        else:
            idx = rng.permutation(idx)
        n_test = _round_half_up(len(idx) * params.test_fraction)
        n_val = _round_half_up(len(idx) * params.val_fraction)
        if len(idx) - n_test - n_val < 1:
            raise DataError(f"class {c} has only {len(idx)} presentations: too few to split")
        code[idx[len(idx) - n_test :]] = 2
        code[idx[len(idx) - n_test - n_val : len(idx) - n_test]] = 1
    _check_not_empty(code, y, params)
    return code


def _last_split(start_time: np.ndarray, params: SplitParams) -> np.ndarray:
    order = np.argsort(start_time, kind="stable")
    n = len(order)
    n_test = _round_half_up(n * params.test_fraction)
    n_val = _round_half_up(n * params.val_fraction)
    code = np.zeros(n, np.int8)
    code[order[n - n_test :]] = 2
    code[order[n - n_test - n_val : n - n_test]] = 1
    if not (code == 0).any():
        raise DataError(f"{n} presentations leave none to train on at split.method 'last'")
    return code


def _check_not_empty(code: np.ndarray, y: np.ndarray, params: SplitParams) -> None:
    for k, name in ((1, "val"), (2, "test")):
        if not (code == k).any():
            raise DataError(
                f"the {name} split is empty: {len(y)} presentations in {len(np.unique(y))} "
                f"classes round to no {name} presentation at split.{name}_fraction "
                f"{getattr(params, f'{name}_fraction')}; raise it or record more repeats"
            )


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


def train_statistics(X_train: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(non-constant unit mask, mean, sd) of each unit over training presentations × bins."""
    flat = X_train.reshape(-1, X_train.shape[2]).astype(np.float64)  # (P, T, U) -> (P*T, U)
    mean, sd = flat.mean(axis=0), flat.std(axis=0)
    return sd > 0, mean, sd


def make_split(
    session_id: SessionId,
    counts: np.ndarray,
    pres: pd.DataFrame,
    units: pd.DataFrame,
    params: Params,
    bin_width_s: float,
    specimen_id: str | None = None,
) -> tuple[SessionData, dict]:
    """Split a session's (P, T, U) counts and fit train-only statistics and the unit graph.

    Returns the split session and what the split folder records besides it (the ids of
    units dropped for zero training variance, the split method, the graph's settings).
    """
    frames = pres["frame"].to_numpy().astype(np.int64)
    keep, y, classes = labels(frames, params.data.include_blank)
    counts, pres = counts[keep], pres.loc[keep].reset_index(drop=True)
    code = assign_splits(y, pres["start_time"].to_numpy(), params.split)
    varying, mean, sd = train_statistics(counts[code == 0])
    constant_ids = units.loc[~varying, "unit_id"].tolist()
    counts, units = counts[:, :, varying], units.loc[varying].reset_index(drop=True)
    edge_index, edge_weight = unit_graph(counts[code == 0], units, params.split.graph)
    ids = pres["presentation_id"].to_numpy()
    parts = {
        name: Split(counts[code == k], y[code == k], ids[code == k])
        for k, name in enumerate(SPLITS)
    }
    data = SessionData(
        session_id=session_id,
        **parts,
        frames=classes,
        unit_ids=units["unit_id"].to_numpy(np.int64),
        mean=mean[varying].astype(np.float32),
        std=sd[varying].astype(np.float32),
        edge_index=edge_index,
        edge_weight=edge_weight,
        units=units,
        n_bins=int(counts.shape[1]),
        bin_width_s=bin_width_s,
        specimen_id=specimen_id,
    )
    extra = {
        "zero_variance_units_dropped": constant_ids,
        "method": params.split.method,
        "graph": {"method": params.split.graph.method, "k": params.split.graph.k},
    }
    if params.split.method == "last":  # unstratified: a class may miss from training
        extra["frames_without_training_presentations"] = classes[
            np.setdiff1d(np.arange(len(classes)), y[code == 0])
        ].tolist()
    return data, extra


# --- the unit graph (ST-GAT) ------------------------------------------------------------


def knn_edges(similarity: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each node receives edges from its k most similar other nodes: ((2, E), (E,))."""
    n = len(similarity)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros((2, 0), np.int64), np.zeros(0, np.float32)
    sim = similarity.astype(np.float64, copy=True)
    np.fill_diagonal(sim, -np.inf)
    src = np.argpartition(-sim, k - 1, axis=1)[:, :k]  # (N, k) neighbours of each target
    dst = np.repeat(np.arange(n), k)
    weight = sim[dst, src.ravel()]
    return np.stack([src.ravel(), dst]).astype(np.int64), weight.astype(np.float32)


def unit_graph(
    X_train: np.ndarray, units: pd.DataFrame, params: GraphParams
) -> tuple[np.ndarray, np.ndarray]:
    """kNN unit graph from train-split correlation, or from probe geometry."""
    if params.method == "correlation":
        flat = X_train.reshape(-1, X_train.shape[2]).astype(np.float64)  # (P*T, U)
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.nan_to_num(np.corrcoef(flat, rowvar=False), nan=0.0)
        return knn_edges(np.atleast_2d(corr), params.k)
    pos = units[list(CCF)].to_numpy(dtype=np.float64)
    if not np.isfinite(pos).all():
        raise DataError(
            "graph.method 'geometry' needs CCF coordinates for every unit's peak channel"
        )
    dist = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1))  # (U, U)
    edge_index, d = knn_edges(-dist, params.k)
    return edge_index, np.exp(d / 100.0).astype(np.float32)  # weight 1 at 0 µm, e^-1 at 100 µm
