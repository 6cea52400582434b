"""The real thing: `dvc repro` in a temporary copy of the project (tests/helpers.py).

Experiments (`dvc exp run -S ...`, `dvc metrics diff`) are tested in test_experiments.py.
"""

import json

import pytest

from tests.helpers import copy_project, sh


@pytest.fixture(scope="module")
def project(reproduced):
    """The shared reproduced project itself: these tests only read it."""
    return reproduced


def test_repro_writes_metrics_as_fractions(project):
    m = json.loads((project / "metrics/logreg/1.json").read_text())
    for split in ("train", "val", "test"):
        for key in ("accuracy", "top5", "balanced_accuracy"):
            assert 0.0 <= m[split][key] <= 1.0
        assert m[split]["n"] > 0
    n_classes = 7  # 6 images + blank in the small test session
    assert m["n_classes"] == n_classes and m["chance"] == pytest.approx(1 / n_classes)
    assert m["test"]["accuracy"] > 2 * m["chance"]
    assert m["ideal_accuracy"] >= m["test"]["accuracy"] - 0.05
    assert 0 < m["poisson_plugin_accuracy"] <= 1
    assert m["ratio_to_ideal"] == pytest.approx(m["test"]["accuracy"] / m["ideal_accuracy"])
    assert not {"wall_time_s", "peak_rss_mb"} & set(m)  # costs: costs/ (git-ignored)
    assert m["specimen_id"] == "700000001"


def test_repro_writes_every_artifact(project):
    for rel in (
        "data/raw/session_1/session_1.nwb",
        "data/raw/session_1/truth.npz",
        "data/raw/session_1/units.csv",
        "data/binned/1.counts.npz",
        "data/clean/1.counts.npz",
        "data/clean/1.report.json",
        "data/split/1/train.npz",
        "models/logreg/1.pt",
        "predictions/logreg/1.csv",
        "metrics/fewshot/logreg/1.json",
        "results/summary.csv",
        "results/fewshot_logreg.csv",
        "scores/logreg_1.json",
        "costs/train_logreg@1.json",
        "plots/accuracy.png",
        "plots/fewshot.png",
        "plots/raster.png",
        "plots/confusion_1.png",
        "metrics/neurometric/1.json",
        "results/neurometric.csv",
        "results/flags.csv",
        "results/medians.csv",
        "plots/neurometric_units.png",
        "plots/neurometric_time.png",
    ):
        assert (project / rel).exists(), rel
    report = json.loads((project / "data/clean/1.report.json").read_text())
    assert report["presentations"]["dropped"]["invalid_times"]["n"] > 0


def test_second_repro_reruns_nothing_that_is_cached(project, tmp_path):
    copy = copy_project(project, tmp_path / "copy")
    out = sh(["dvc", "repro"], copy).stdout
    stages = ("fetch@1", "bin@1", "clean@1", "split@1", "train_logreg@1", "fewshot_logreg@1")
    for stage in (*stages, "neurometric@1"):
        assert f"Running stage '{stage}'" not in out, stage


def test_regenerated_synthetic_session_is_identical(project, tmp_path):
    """Forcing fetch again gives the same bytes, so DVC reruns nothing downstream."""
    copy = copy_project(project, tmp_path / "copy")
    out = sh(["dvc", "repro", "--force", "--single-item", "fetch@1"], copy).stdout
    assert "Running stage 'fetch@1'" in out
    status = sh(["dvc", "status", "--json"], copy).stdout
    assert json.loads(status) == {}


def test_optional_models_run_only_when_listed(project, tmp_path):
    copy = copy_project(project, tmp_path / "copy")
    assert "stgat" not in sh(["dvc", "stage", "list"], copy).stdout  # off by default
    params = copy / "params.yaml"
    params.write_text(params.read_text().replace("optional_models: []", "optional_models: [stgat]"))
    dry = sh(["dvc", "repro", "--dry"], copy).stdout
    for stage in ("train_stgat@stgat-1", "fewshot_stgat@stgat-1"):
        assert f"Running stage '{stage}'" in dry, stage
    assert "Running stage 'train_lstm@1'" not in dry  # nothing else changed
    sh(["dvc", "repro", "train_stgat"], copy)
    m = json.loads((copy / "metrics/stgat/1.json").read_text())
    assert m["model"] == "stgat" and m["test"]["accuracy"] > 2 * m["chance"]
    stale = json.loads(sh(["dvc", "status", "--json"], copy).stdout)
    assert set(stale) == {"fewshot_stgat@stgat-1", "report"}  # the report reads its metrics


def test_run_costs_are_recorded_outside_every_artifact(project):
    costs = json.loads((project / "costs/train_lstm@1.json").read_text())
    assert costs["wall_time_s"] > 0 and costs["peak_rss_mb"] > 0 and costs["cpu_time_s"] > 0
    assert not (project / "results/costs.csv").exists()  # results/ is tracked: no run costs
    table = sh(["python", "-m", "npdecode.formats.costs"], project).stdout
    assert "train_lstm,1," in table and "report," in table
    for path in [*project.glob("data/*/*.json"), *project.glob("metrics/**/*.json")]:
        assert "wall_time" not in path.read_text(), path
    assert "costs/" in (project / ".gitignore").read_text()
