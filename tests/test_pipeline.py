"""The real thing: `dvc repro` and `dvc exp run` in a temporary project."""

import json

import pytest

from .conftest import make_project, run


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("proj") / "p")
    out = run(["dvc", "repro"], project)
    return project, out.stdout + out.stderr


def test_repro_writes_metrics_as_fractions(reproduced):
    project, _ = reproduced
    m = json.loads((project / "metrics/logreg/1.json").read_text())
    for split in ("train", "val", "test"):
        for key in ("accuracy", "top5", "balanced_accuracy"):
            assert 0.0 <= m[split][key] <= 1.0
        assert m[split]["n"] > 0
    n_classes = 11
    assert m["n_classes"] == n_classes and m["chance"] == pytest.approx(1 / n_classes)
    assert m["test"]["accuracy"] > 2 * m["chance"]
    assert m["ideal_accuracy"] >= m["test"]["accuracy"] - 0.05
    assert 0 < m["poisson_plugin_accuracy"] <= 1
    assert m["ratio_to_ideal"] == pytest.approx(m["test"]["accuracy"] / m["ideal_accuracy"])
    assert m["wall_time_s"] > 0 and m["peak_rss_mb"] > 0


def test_repro_writes_every_artifact(reproduced):
    project, _ = reproduced
    for rel in (
        "data/raw/session_1/session_1.nwb",
        "data/raw/session_1/truth.npz",
        "data/raw/session_1/units.csv",
        "data/binned/1.parquet",
        "data/clean/1.report.json",
        "data/split/1/train.npz",
        "models/logreg/1.pt",
        "predictions/logreg/1.csv",
        "results/summary.csv",
        "plots/accuracy.png",
    ):
        assert (project / rel).exists(), rel
    report = json.loads((project / "data/clean/1.report.json").read_text())
    assert report["presentations"]["dropped"]["invalid_times"]["n"] > 0


def test_second_repro_has_nothing_to_do(reproduced):
    project, _ = reproduced
    out = run(["dvc", "repro"], project)
    assert "didn't change" in out.stdout or "up to date" in out.stdout
    assert "Running stage" not in out.stdout


def test_exp_run_with_changed_param_shows_both(reproduced):
    project, _ = reproduced
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "baseline results"], project)
    out = run(["dvc", "exp", "run", "-S", "train.logreg.C=10.0", "-n", "bigC"], project)
    # only the model stage and report rerun; data stages are cached
    assert "Running stage 'train_logreg@1'" in out.stdout
    assert "Running stage 'fetch@1'" not in out.stdout
    show = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    text = json.dumps(show)
    assert "bigC" in text and "10.0" in text
    # the experiment's results are in the workspace: compare them with the committed baseline
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], project).stdout)
    acc = diff["metrics/logreg/1.json"]["test.accuracy"]
    assert acc["old"] != acc["new"]
