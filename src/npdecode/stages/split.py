"""Stage `split`: presentations -> train / val / test, with train-only statistics.

A training example is one presentation (T bins × U units), labelled by its `frame`
(blank = -1 is a class unless `data.include_blank` is false). The default split is
time-ordered and stratified: for each image its earliest presentations train, later ones
validate, the last ones test. Zero-variance units, normalisation statistics and the
ST-GAT unit graph are computed from the training split only.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from npdecode.cli import run_stage
from npdecode.data import SPLITS
from npdecode.errors import DataError
from npdecode.io import atomic_path, read_json, write_json
from npdecode.params import GraphParams, Params, SplitParams
from npdecode.paths import Layout
from npdecode.runinfo import measure
from npdecode.tables import to_tensor, unit_columns

PARAMS = ("data", "split", "bin.timesteps_per_frame")
log = logging.getLogger(__name__)
CCF = (
    "anterior_posterior_ccf_coordinate",
    "dorsal_ventral_ccf_coordinate",
    "left_right_ccf_coordinate",
)


def main(params: Params, session_id: int, root: Path = Path(".")) -> None:
    """Split session `session_id` into data/split/<id>/."""
    layout = Layout(root)
    n_bins = params.bin.timesteps_per_frame
    with measure() as cost:
        table = pd.read_parquet(layout.clean(session_id))
        counts, pres = to_tensor(table, n_bins, session_id, str(layout.clean(session_id)))
        units = pd.read_parquet(layout.binned_units(session_id))
        unit_ids = np.array([int(c) for c in unit_columns(table)], dtype=np.int64)
        units = units.set_index("unit_id").loc[unit_ids].reset_index()
        shown = pd.read_parquet(layout.binned_presentations(session_id))
        specimen = read_json(layout.bin_report(session_id)).get("specimen_id")
        width = float(np.median(shown["stop_time"] - shown["start_time"])) / n_bins
        summary = write_split(
            layout.split_dir(session_id),
            session_id,
            counts,
            pres,
            units,
            params,
            bin_width_s=width,
            specimen_id=specimen,
        )
    write_json(layout.split_report(session_id), {**summary, **cost})


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
    """
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
    for k, name in ((1, "val"), (2, "test")):
        if not (code == k).any():
            raise DataError(
                f"the {name} split is empty: {len(y)} presentations in {len(np.unique(y))} "
                f"classes round to no {name} presentation at split.{name}_fraction "
                f"{getattr(params, f'{name}_fraction')}; raise it or record more repeats"
            )
    return code


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


def train_statistics(X_train: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(non-constant unit mask, mean, sd) of each unit over training presentations × bins."""
    flat = X_train.reshape(-1, X_train.shape[2]).astype(np.float64)  # (P, T, U) -> (P*T, U)
    mean, sd = flat.mean(axis=0), flat.std(axis=0)
    return sd > 0, mean, sd


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


def write_split(
    out_dir: Path,
    session_id: int,
    counts: np.ndarray,
    pres: pd.DataFrame,
    units: pd.DataFrame,
    params: Params,
    bin_width_s: float,
    specimen_id: str | None = None,
) -> dict:
    """Split, fit train-only statistics and write everything under `out_dir`; return a summary."""
    frames = pres["frame"].to_numpy().astype(np.int64)
    keep, y, classes = labels(frames, params.data.include_blank)
    counts, pres = counts[keep], pres.loc[keep].reset_index(drop=True)
    code = assign_splits(y, pres["start_time"].to_numpy(), params.split)
    varying, mean, sd = train_statistics(counts[code == 0])
    constant_ids = units.loc[~varying, "unit_id"].tolist()
    counts, units = counts[:, :, varying], units.loc[varying].reset_index(drop=True)
    edge_index, edge_weight = unit_graph(counts[code == 0], units, params.split.graph)
    ids = pres["presentation_id"].to_numpy()
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for k, name in enumerate(SPLITS):
            m = code == k
            np.savez(tmp / f"{name}.npz", X=counts[m], y=y[m], presentation_id=ids[m])
        unit_ids = units["unit_id"].to_numpy(np.int64)
        np.savez(
            tmp / "norm.npz",
            unit_ids=unit_ids,
            mean=mean[varying].astype(np.float32),
            std=sd[varying].astype(np.float32),
        )
        np.savez(tmp / "graph.npz", edge_index=edge_index, edge_weight=edge_weight)
        units.to_parquet(tmp / "units.parquet", index=False)
        meta = {
            "session_id": session_id,
            "specimen_id": specimen_id,
            "n_bins": int(counts.shape[1]),
            "bin_width_s": bin_width_s,
            "frames": classes,
            "n_units": int(varying.sum()),
            "n": {name: int((code == k).sum()) for k, name in enumerate(SPLITS)},
            "zero_variance_units_dropped": constant_ids,
            "method": params.split.method,
            "graph": {
                "method": params.split.graph.method,
                "k": params.split.graph.k,
                "n_edges": int(edge_index.shape[1]),
            },
        }
        write_json(tmp / "meta.json", meta)
    log.info(
        "session %d: train/val/test = %s, %d units",
        session_id,
        list(meta["n"].values()),
        meta["n_units"],
    )
    return {k: meta[k] for k in ("session_id", "specimen_id", "n_units", "n", "method")} | {
        "n_zero_variance_units_dropped": len(constant_ids),
        "n_classes": len(classes),
    }


if __name__ == "__main__":
    run_stage("split", main)
