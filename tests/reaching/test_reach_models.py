"""Deep decoders of a reaching session (issue 22): the checkpoint `reach_train` writes and
`npdecode.load_model` reads, and ST-GAT with the regression head, on a 90 s twin file
(tests/conftest.py `macaque_twin_files`) through the stage functions."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import npdecode
from npdecode.errors import CorruptError, DataError, ParamsError
from npdecode.formats.reach_checkpoint import load_reach_checkpoint
from npdecode.models.stgat import STGAT
from npdecode.params import GraphParams, Params, ReachFewshotParams, ReachParams, SplitParams
from npdecode.paths import Layout
from npdecode.reaching import decoders
from npdecode.stages import fetch, fewshot, reference, split, train

NAME = "indy_20160622_01"
MODELS = ("lstm", "stgat")


def _params(folder: Path, graph: str = "correlation") -> Params:
    reach = ReachParams(
        source="local",
        path=str(folder),
        models=MODELS,
        max_epochs=2,
        fewshot=ReachFewshotParams(minutes=(0.1,), repeats=1, steps=5),
    )
    return dataclasses.replace(
        Params(),
        reach_sessions=(NAME,),
        reach=reach,
        split=SplitParams(graph=GraphParams(method=graph)),  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def trained(
    macaque_twin_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Params]:
    """A project root with the twin fetched, split, its references and both models trained."""
    root = tmp_path_factory.mktemp("reach_models")
    params = _params(macaque_twin_files[NAME].parent)
    for stage in (fetch, split, reference):
        stage.main(params, NAME, root)
    for model in MODELS:
        train.main(params, model, NAME, root)
    return root, params


@pytest.mark.parametrize("model", MODELS)
def test_the_checkpoint_decodes_what_the_stage_scored(
    trained: tuple[Path, Params], model: str
) -> None:
    root, _ = trained
    data = npdecode.load_split(NAME, root=root)
    net = npdecode.load_model(model, NAME, root=root)
    assert net.name == model and net.target == "velocity" and net.history == data.history
    assert (net.unit_ids == data.unit_ids).all() and net.bin_width_s == data.width_s
    out = net.predict(data.counts, unit_ids=data.unit_ids)
    assert out.shape == (len(data.counts), 2)
    h = data.history
    assert np.isnan(out[: h - 1]).all() and np.isfinite(out[h - 1 :]).all()
    # the test bins decoded from raw counts equal the stage's own test predictions (mm/s)
    table = pd.read_csv(Layout(root).reach_predictions(model, NAME))
    te = data.rows["test"]
    np.testing.assert_array_equal(table["bin"], te)
    np.testing.assert_allclose(out[te], table[[f"{model}_x", f"{model}_y"]], rtol=1e-4, atol=1e-3)
    # columns in another order, plus a unit the model never saw: matched by id
    order = np.arange(data.n_units)[::-1]
    extra = np.concatenate([data.counts[:, order], data.counts[:, :1]], axis=1)
    ids = np.append(data.unit_ids[order], "M1999/9")
    np.testing.assert_allclose(net.predict(extra, unit_ids=ids), out, rtol=1e-5, atol=1e-6)


def test_predict_refuses_counts_it_cannot_check(trained: tuple[Path, Params]) -> None:
    root, _ = trained
    data = npdecode.load_split(NAME, root=root)
    net = npdecode.load_model("lstm", NAME, root=root)
    c, ids = data.counts, data.unit_ids
    with pytest.raises(DataError, match=r"counts lack units \['M1"):
        net.predict(c[:, 1:], unit_ids=ids[1:])
    with pytest.raises(DataError, match="not whole numbers"):
        net.predict(c + 0.5, unit_ids=ids)
    with pytest.raises(DataError, match=r"must be \(n_bins, U\)"):
        net.predict(c[None], unit_ids=ids)
    with pytest.raises(DataError, match="repeats ids"):
        net.predict(c[:, [0, 0]], unit_ids=ids[[0, 0]])
    with pytest.raises(TypeError, match="unit_ids must be strings"):
        net.predict(c, unit_ids=np.arange(len(ids)))
    with pytest.raises(DataError, match=rf"models/reach/transformer/{NAME}.pt does not exist"):
        npdecode.load_model("transformer", NAME, root=root)


def test_a_changed_checkpoint_is_refused(trained: tuple[Path, Params], tmp_path: Path) -> None:
    root, _ = trained
    path = Layout(root).reach_model("lstm", NAME)
    _, ckpt = load_reach_checkpoint(path)
    ckpt["target_sd"] = ckpt["target_sd"] * 2  # outputs in another unit: the hash says no
    torch.save(ckpt, tmp_path / "changed.pt")
    with pytest.raises(CorruptError, match="do not match its sha256"):
        load_reach_checkpoint(tmp_path / "changed.pt")


def test_stgat_decodes_velocity_with_the_regression_head(trained: tuple[Path, Params]) -> None:
    root, params = trained
    layout = Layout(root)
    metrics = json.loads(layout.reach_metrics("stgat", NAME).read_text())
    test = metrics["test"]
    assert test["r2_lo"] <= test["r2"] <= test["r2_hi"] and test["n"] > 0
    assert {"r2_0", "r2_1", "r_0"} <= set(test) and test["r2"] > 0.3  # tuned to velocity
    assert {p["b"] for p in metrics["paired"]} == {"wiener", "kalman"}  # no truth copied
    net, ckpt = load_reach_checkpoint(layout.reach_model("stgat", NAME))
    assert isinstance(net, STGAT) and net.head.out_features == 2  # one model, the task's head
    data = npdecode.load_split(NAME, root=root)
    k = params.split.graph.k
    assert ckpt["dims"]["n_edges"] == k * data.n_units  # kNN: k in-edges per unit
    # the graph is the training windows' only: changing every other bin changes nothing
    edges, weights = decoders.reach_graph(data, data.rows["train"], params.split.graph)
    np.testing.assert_array_equal(net.edge_index.numpy(), edges)
    train_bins = decoders.window_bins(data.rows["train"], data.history)
    other = np.setdiff1d(np.arange(len(data.counts)), train_bins)
    shuffled = data.counts.copy()
    shuffled[other] = np.random.default_rng(0).permutation(shuffled[other], axis=1)
    again, _ = decoders.reach_graph(data, data.rows["train"], params.split.graph, shuffled)
    np.testing.assert_array_equal(again, edges)
    # ... and changing training bins does change it (the test above could fail)
    moved = data.counts.copy()
    moved[train_bins] = np.random.default_rng(0).permutation(moved[train_bins], axis=1)
    changed, _ = decoders.reach_graph(data, data.rows["train"], params.split.graph, moved)
    assert not np.array_equal(changed, edges)


def test_stgat_few_shot_on_a_reaching_session(trained: tuple[Path, Params]) -> None:
    root, params = trained
    fewshot.main(params, "stgat", NAME, root)
    result = json.loads(Layout(root).reach_fewshot("stgat", NAME).read_text())
    curve = result["minutes"]["0.1"]
    assert result["protocol"] == "strict" and np.isfinite(curve["mean"])


def test_a_geometry_graph_is_refused_in_one_line(
    macaque_twin_files: dict[str, Path], trained: tuple[Path, Params], tmp_path: Path
) -> None:
    root, _ = trained
    params = _params(macaque_twin_files[NAME].parent, graph="geometry")
    mine = tmp_path / "p"
    (mine / "data").mkdir(parents=True)
    layout = Layout(mine)
    for path in ("data/reach", "predictions"):
        shutil.copytree(root / path, mine / path, dirs_exist_ok=True)
    with pytest.raises(ParamsError, match=rf"session {NAME}: split.graph.method 'geometry' needs"):
        train.main(params, "stgat", NAME, mine)
    assert not layout.reach_metrics("stgat", NAME).exists()
    assert not layout.reach_model("stgat", NAME).exists()
