"""Stage `train` for every model on a tiny synthetic session built by the real stages."""

from __future__ import annotations

import json
import shutil
import typing
from pathlib import Path

import pandas as pd
import pytest
import torch

from npdecode.formats.checkpoint import predict
from npdecode.formats.files import read_json
from npdecode.formats.split import load_session
from npdecode.params import OptionalModel, params_from_dict
from npdecode.paths import Layout
from npdecode.stages import train
from tests.helpers import SPLIT_SESSION, copy_split_session, make_project, sh

REPO = Path(__file__).resolve().parents[2]
MODELS = ("logreg", "lstm", "transformer", "stgat")
DEFAULT_MODELS = tuple(m for m in MODELS if m not in typing.get_args(OptionalModel))
SMALL = {
    "sessions": [1],
    **SPLIT_SESSION,  # the session of the shared `split_session` fixture
    "train": {
        "device": "cpu",
        "batch_size": 16,
        "lstm": {"hidden": 16, "max_epochs": 4, "patience": 2},
        "transformer": {
            "d_model": 16,
            "heads": 2,
            "layers": 1,
            "ff": 32,
            "lstm_hidden": 16,
            "max_epochs": 4,
            "patience": 2,
        },
        "stgat": {"readout": 16, "lstm_hidden": 16, "max_epochs": 3, "patience": 2},
    },
}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, split_session: Path) -> Path:
    """A project root with a tiny synthetic session split and its reference metrics."""
    return copy_split_session(split_session, tmp_path_factory.mktemp("train") / "project")


@pytest.mark.parametrize("model", MODELS)
def test_train_writes_checkpoint_metrics_predictions(session: Path, model: str) -> None:
    params = params_from_dict(SMALL)
    train.main(params, model, 1, session)
    layout = Layout(session)
    metrics = read_json(layout.metrics(model, 1))
    names = ("accuracy", "top5", "balanced_accuracy")
    for split_name in ("train", "val", "test"):
        m = metrics[split_name]
        assert set(m) == {"n", *names, *(f"{x}_{end}" for x in names for end in ("lo", "hi"))}
        assert 0.0 <= m["accuracy"] <= 1.0
        for x in names:  # every accuracy carries its 95 % interval
            assert 0.0 <= m[f"{x}_lo"] <= m[x] <= m[f"{x}_hi"] <= 1.0
    reference = read_json(layout.reference(1))
    for decoder in ("poisson_plugin", "ideal"):
        r = reference[decoder]
        assert r["accuracy_lo"] <= r["accuracy"] <= r["accuracy_hi"], decoder
    for key in ("chance", "n_classes", "poisson_plugin_accuracy", "ideal_accuracy"):
        assert key in metrics
    assert not {"wall_time_s", "peak_rss_mb"} & set(metrics)  # costs live in costs/
    assert metrics["model"] == model
    if model != "logreg":
        assert 1 <= metrics["best_epoch"] <= metrics["epochs"]
        assert metrics["val"]["accuracy"] == metrics["best_val_accuracy"]
        curve = layout.live_dir(model, 1) / "plots" / "metrics" / "val" / "accuracy.tsv"
        assert len(pd.read_csv(curve, sep="\t")) == metrics["epochs"]

    preds = pd.read_csv(layout.predictions(model, 1))
    data = load_session(layout.split_dir(1), 1)
    assert len(preds) == len(data.test)
    assert (preds["actual"] == data.frames[data.test.y]).all()
    assert (preds["actual"] == preds["predicted"]).mean() == pytest.approx(
        metrics["test"]["accuracy"]
    )
    # the checkpoint alone reproduces the test predictions
    probs = predict(layout.model(model, 1), data.test.X, data.unit_ids, session_id=1)
    assert (data.frames[probs.argmax(1)] == preds["predicted"]).all()


@pytest.mark.parametrize("model", MODELS[1:])
def test_deep_stage_is_deterministic_on_cpu(session: Path, tmp_path: Path, model: str) -> None:
    params = params_from_dict(SMALL)
    twin = tmp_path / "twin"
    shutil.copytree(session, twin)
    for root in (session, twin):
        train.main(params, model, 1, root)
    a, b = (read_json(Layout(r).metrics(model, 1)) for r in (session, twin))
    for key in ("train", "val", "test", "epochs", "best_epoch"):
        assert a[key] == b[key]
    wa, wb = (torch.load(Layout(r).model(model, 1), weights_only=True) for r in (session, twin))
    assert wa["state_dict"].keys() == wb["state_dict"].keys()
    for name, tensor in wa["state_dict"].items():
        assert torch.equal(tensor, wb["state_dict"][name]), f"{name} differs between runs"
    # and so the files another stage or a clone compares are the same bytes
    for path in (Layout(Path(".")).model(model, 1), Layout(Path(".")).metrics(model, 1)):
        assert (session / path).read_bytes() == (twin / path).read_bytes(), path


def _check_repro(project: Path, sessions: list[int]) -> None:
    """Every default model's metrics per session (optional ones are off by default), learning
    curves for `dvc plots show`, nothing stale."""
    shown = json.loads(sh(["dvc", "metrics", "show", "--json"], project).stdout)
    files = next(iter(shown.values()))["data"]
    for model in DEFAULT_MODELS:
        for sid in sessions:
            scores = files[f"scores/{model}_{sid}.json"]["data"]
            assert 0.0 <= scores["acc"][model][str(sid)] <= 1.0
    assert not [f for f in files if "stgat" in f], "ST-GAT ran though optional_models is []"
    plots = json.loads(sh(["dvc", "plots", "show", "--json"], project).stdout)["data"]
    for model in DEFAULT_MODELS[1:]:
        curve = f"dvclive/{model}/{sessions[-1]}/plots/metrics/val/accuracy.tsv"
        assert curve in plots, f"dvc plots show lacks {curve}"
    status = json.loads(sh(["dvc", "status", "--json"], project).stdout)
    assert status == {}, f"pipeline not up to date after repro: {status}"


def test_dvc_repro_trains_all_models(reproduced: Path) -> None:
    """`dvc repro` in a fresh git repo (the shared reproduced project): the default models."""
    _check_repro(reproduced, [1])


@pytest.mark.slow
def test_dvc_repro_trains_all_models_on_two_sessions(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {**SMALL, "sessions": [1, 2]})
    sh(["dvc", "repro"], project)
    _check_repro(project, [1, 2])
