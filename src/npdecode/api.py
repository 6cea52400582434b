"""The notebook API: a session's split, a trained model's predictions and the result tables.

Three calls, each reading what `dvc repro` wrote under a project folder (`root`, default
the current folder); every path comes from `npdecode.paths.Layout`:

    split = npdecode.load_split(1)
    probs = npdecode.load_model("lstm", 1).predict(split.test.X, unit_ids=split.unit_ids)
    summary = npdecode.load_results()["summary"]

What a model reads and what it outputs are explicit: `split.unit_ids[u]` is the unit of
column u of the counts, and column c of the probabilities is class `model.classes[c]` (the
Allen `frame` of an image; -1 is the blank). A session of the macaque reaching data set is
named by a string (`"indy_20160622_01"`): `load_split` gives its binned recording
(`ReachData`: `.counts` (n_bins, U), `.unit_ids`, `.vel`) and `load_model` a `ReachModel`
whose `.predict(counts, unit_ids)` decodes the target (n_bins, 2). No stage imports this
module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np
import pandas as pd

from npdecode.errors import DataError
from npdecode.formats.checkpoint import predict, read_checkpoint
from npdecode.formats.reach_checkpoint import predict_reach, read_reach_checkpoint
from npdecode.formats.reach_split import ReachData, load_reach
from npdecode.formats.split import SessionData, load_session
from npdecode.paths import Layout

__all__ = ["Model", "ReachModel", "load_model", "load_results", "load_split"]


@overload
def load_split(session_id: int, root: str | Path = ".") -> SessionData: ...
@overload
def load_split(session_id: str, root: str | Path = ".") -> ReachData: ...
def load_split(session_id: int | str, root: str | Path = ".") -> SessionData | ReachData:
    """The train/val/test split of a session (`data/split/<id>/`).

    Each of `.train`, `.val`, `.test` has `X` (P, T, U) spike counts, `y` (P,) class
    indices and `presentation_id` (P,); `.unit_ids` (U,) names the units of X's columns,
    `.units` their probe, area and quality metrics, `.frames` (C,) the image of each class
    index (-1 = blank).

    A reaching session (a string, `data/reach/<name>/`): `.counts` (n_bins, U) of the whole
    recording, `.unit_ids` (U,) its units (`<channel>/<row>`), `.pos`/`.vel`/`.acc`
    (n_bins, 2) the cursor per bin, `.rows[split]` the bins each split scores.
    """
    layout = Layout(Path(root))
    if isinstance(session_id, str):
        return load_reach(layout.reach_split_dir(session_id), session_id)
    return load_session(layout.split_dir(session_id), session_id)


@dataclass(frozen=True)
class Model:
    """A trained checkpoint: what it reads (`unit_ids`, `n_bins`) and outputs (`classes`).

    Attributes:
        path: the checkpoint file.
        name: the model (`logreg`, `lstm`, `transformer`, `stgat`, `multisession`).
        session_id: the session whose units it reads.
        unit_ids: (U,) the units it reads, in its input order.
        classes: (C,) what each output column is: the Allen frame of an image, -1 = blank.
        n_bins: time bins per presentation it was trained on.
    """

    path: Path
    name: str
    session_id: int
    unit_ids: np.ndarray
    classes: np.ndarray
    n_bins: int

    def predict(self, counts: np.ndarray, unit_ids: np.ndarray) -> np.ndarray:
        """Class probabilities (P, C) for raw spike counts (P, T, U).

        Args:
            counts: (P, T, U) spike counts binned as in training (`n_bins` bins).
            unit_ids: the unit id of each column of `counts` (required: counts whose units
                cannot be checked are refused); the columns are matched to `self.unit_ids`
                (every one must be present, extra ones are ignored).

        Returns:
            (P, C) probabilities; column c is class `self.classes[c]`.
        """
        return predict(self.path, counts, unit_ids, session_id=self.session_id)

    def predict_classes(self, counts: np.ndarray, unit_ids: np.ndarray) -> np.ndarray:
        """(P,) the most probable class of each presentation (an Allen frame, -1 = blank)."""
        return self.classes[self.predict(counts, unit_ids).argmax(axis=1)]


@dataclass(frozen=True)
class ReachModel:
    """A trained decoder of a reaching session: what it reads and what it outputs.

    Attributes:
        path: the checkpoint file (`models/reach/<model>/<session>.pt`).
        name: the model (`lstm`, `transformer`, `stgat`).
        session_id: the session whose units it reads (`indy_20160622_01`).
        unit_ids: (U,) the units it reads (`<channel>/<row>`), in its input order.
        target: what it decodes (`velocity`, `position` or `acceleration`: cursor, 2-D, in
            mm/s, mm or mm/s²).
        bin_width_s: the bin width of the counts it reads.
        history: the bins of each window it reads (the output of bin j reads bins
            j - history + 1 .. j).
    """

    path: Path
    name: str
    session_id: str
    unit_ids: np.ndarray
    target: str
    bin_width_s: float
    history: int

    def predict(self, counts: np.ndarray, unit_ids: np.ndarray) -> np.ndarray:
        """The decoded target (n_bins, 2) from counts (n_bins, U) of consecutive bins.

        `unit_ids` names each column (required; matched to `self.unit_ids`, extra ones
        ignored). The first `history - 1` rows have no full window: NaN.
        """
        return predict_reach(self.path, counts, unit_ids)


@overload
def load_model(model: str, session_id: int, root: str | Path = ".") -> Model: ...
@overload
def load_model(model: str, session_id: str, root: str | Path = ".") -> ReachModel: ...
def load_model(model: str, session_id: int | str, root: str | Path = ".") -> Model | ReachModel:
    """The trained `model` of a session (`models/<model>/<id>.pt`; for `multisession`, the
    shared decoder's read-in of that session; for a reaching session, named by a string,
    `models/reach/<model>/<name>.pt`), its content hash checked."""
    layout = Layout(Path(root))
    if isinstance(session_id, str):
        reach_path = layout.reach_model(model, session_id)
        if not reach_path.exists():
            raise DataError(
                f"session {session_id}: no {model} model of this session: {reach_path} does "
                "not exist (add it to params.yaml reach_sessions and its model to "
                "reach.models, then run `dvc repro`)"
            )
        ck = read_reach_checkpoint(reach_path)
        return ReachModel(
            path=reach_path,
            name=str(ck["model"]),
            session_id=str(ck["session"]),
            unit_ids=np.asarray(ck["unit_ids"], dtype=str),
            target=str(ck["target"]),
            bin_width_s=float(ck["bin_width_s"]),
            history=int(ck["history"]),
        )
    if model == "multisession":  # one checkpoint per group of sessions: the one with it
        paths = sorted((layout.root / "models" / model).glob("*.pt"))
    else:
        paths = [layout.model(model, session_id)]
    for path in paths:
        ckpt = read_checkpoint(path)
        units = ckpt["sessions"].get(str(session_id))
        if units is not None:
            break
    else:
        where = ", ".join(map(str, paths)) or f"{layout.root / 'models' / model}/"
        raise DataError(
            f"session {session_id}: no {model} model of this session in {where} "
            "(add it to params.yaml sessions and run `dvc repro`)"
        )
    return Model(
        path=path,
        name=str(ckpt["model"]),
        session_id=int(session_id),
        unit_ids=np.asarray(units["unit_ids"]),
        classes=np.asarray(ckpt["frames"]),
        n_bins=int(ckpt["n_bins"]),
    )


def load_results(root: str | Path = ".") -> dict[str, pd.DataFrame]:
    """Every table of `results/` by name (`summary`, `fewshot_lstm`, `comparisons`, ...)."""
    folder = Layout(Path(root)).results_dir
    tables = {p.stem: pd.read_csv(p) for p in sorted(folder.glob("*.csv"))}
    if not tables:
        raise DataError(f"{folder} holds no tables: run `dvc repro` in {Path(root).resolve()}")
    return tables
