"""`dvc exp run` (in a temp dir, queued) and the comparisons lab members read: real DVC runs."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest
import yaml

from .helpers import (
    PROJECT,
    TRACE_ENV,
    read_json,
    sh,
    traced_imports,
)


def exp_table(project: Path) -> dict[str, dict[str, str]]:
    """`dvc exp show --csv --only-changed` as {experiment or baseline name: {column: value}}."""
    out = sh(["dvc", "exp", "show", "--csv", "--only-changed"], project).stdout
    rows = csv.DictReader(io.StringIO(out))
    return {row["Experiment"] or row["rev"]: row for row in rows}


def metric_column(row: dict[str, str], path: str, key: str) -> float:
    """A metric of `dvc exp show --csv`: `<path>:<key>`, or `<key>` when only one file changed."""
    return float(row[f"{path}:{key}"] if f"{path}:{key}" in row else row[key])


def test_every_stage_runs_the_package_of_its_own_checkout() -> None:
    # a bare `python -m npdecode...` in an experiment's temp dir imports whatever npdecode is
    # installed (the user's workspace, another clone), not the experiment's code
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    cmds = {name: (s.get("do", s))["cmd"] for name, s in stages.items()}
    assert "train_logreg" in cmds
    for name, cmd in cmds.items():
        assert cmd.startswith("env PYTHONPATH=src python -m npdecode.stages."), name


def test_temp_experiment_with_changed_C_runs_its_own_code_and_compares(
    project: Path, tmp_path: Path
) -> None:
    base = read_json(project / "metrics/logreg/1.json")
    trace = tmp_path / "imports.txt"
    out = sh(
        ["dvc", "exp", "run", "--temp", "-S", "train.logreg.C=0.1", "-n", "c01"],
        project,
        env={TRACE_ENV: str(trace)},
    ).stdout
    # params changed for the model only: the data stages are not rerun
    assert "Running stage 'train_logreg@1'" in out
    assert "Running stage 'fetch@1'" not in out and "Running stage 'split@1'" not in out
    imported = traced_imports(trace)
    assert (
        len(imported) == 5
    )  # check_params, train_logreg@1, fewshot_logreg@1, neurometric@1, report
    temp_root = (project / ".dvc" / "tmp" / "exps").resolve()
    assert all(temp_root in p.resolve().parents for p in imported), imported
    # --temp leaves the workspace alone
    assert read_json(project / "metrics/logreg/1.json") == base

    table = exp_table(project)
    assert set(table) == {"workspace", "main", "c01"}
    assert float(table["workspace"]["train.logreg.C"]) == 0.01  # untouched by --temp
    assert float(table["main"]["train.logreg.C"]) == 0.01
    assert float(table["c01"]["train.logreg.C"]) == 0.1
    logreg, key = "scores/logreg_1.json", "acc.logreg.1"
    assert metric_column(table["main"], logreg, key) == base["test"]["accuracy"]
    new_acc = metric_column(table["c01"], logreg, key)
    assert new_acc != base["test"]["accuracy"]

    diff = json.loads(sh(["dvc", "metrics", "diff", "--json", "HEAD", "c01"], project).stdout)
    acc = diff[logreg][key]
    assert (acc["old"], acc["new"]) == (base["test"]["accuracy"], new_acc)
    assert acc["diff"] == pytest.approx(new_acc - base["test"]["accuracy"])
    params = sh(["dvc", "params", "diff", "HEAD", "c01"], project).stdout
    assert "train.logreg.C" in params and "0.01" in params and "0.1" in params


def wait_for_queue(project: Path, timeout_s: float = 300.0) -> str:
    """Poll `dvc queue status` until nothing is queued or running; return the last status."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = sh(["dvc", "queue", "status"], project).stdout
        if not any(word in status for word in ("Queued", "Running")):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"queue still busy after {timeout_s:.0f} s:\n{status}")
        time.sleep(2)


@pytest.mark.slow  # ~40 s: two queued experiments, one a whole new session
def test_queued_session_and_param_experiments_run_in_parallel(
    project: Path, tmp_path: Path
) -> None:
    trace = tmp_path / "imports.txt"
    env = {TRACE_ENV: str(trace)}
    sh(["dvc", "exp", "run", "--queue", "-S", "sessions=[2]", "-n", "session2"], project)
    sh(["dvc", "exp", "run", "--queue", "-S", "train.logreg.C=0.1", "-n", "c01"], project)
    try:
        sh(["dvc", "queue", "start", "-j", "2"], project, env=env)
        status = wait_for_queue(project)
    finally:
        sh(["dvc", "queue", "stop"], project, check=False)
    assert status.count("Success") == 2, status
    logs = sh(["dvc", "queue", "logs", "session2"], project).stdout
    assert "Running stage 'fetch@2'" in logs  # a new session: its whole pipeline ran

    temp_root = (project / ".dvc" / "tmp" / "exps").resolve()
    imported = traced_imports(trace)
    assert imported and all(temp_root in p.resolve().parents for p in imported), imported

    show = json.loads(sh(["dvc", "exp", "show", "--json"], project).stdout)
    exps = {
        e["name"]: e["revs"][0]["data"] for branch in show for e in branch.get("experiments") or []
    }
    assert set(exps) == {"session2", "c01"}
    s2 = exps["session2"]
    assert s2["params"]["params.yaml"]["data"]["sessions"] == [2]
    m2 = s2["metrics"]["scores/logreg_2.json"]["data"]["acc"]["logreg"]["2"]
    assert 0 <= m2 <= 1
    assert "scores/logreg_1.json" not in s2["metrics"]
    c01 = exps["c01"]
    assert c01["params"]["params.yaml"]["data"]["train"]["logreg"]["C"] == 0.1
    base = read_json(project / "metrics/logreg/1.json")
    m1 = c01["metrics"]["scores/logreg_1.json"]["data"]["acc"]["logreg"]["1"]
    assert m1 != base["test"]["accuracy"]


MODELS = ("logreg", "lstm", "transformer", "multisession")  # the default ones (no optional_models)
# what an experiment may change in git: its params, the lock file and results
RESULTS = ("scores/", "metrics/", "predictions/", "results/", "plots/", "dvclive/")


def changed_in_git(project: Path) -> list[str]:
    out = sh(["git", "status", "--porcelain", "--untracked-files=all"], project).stdout
    return sorted(line[3:] for line in out.splitlines())


def test_repro_with_unchanged_inputs_leaves_git_clean(project: Path) -> None:
    out = sh(["dvc", "repro"], project).stdout
    assert "Running stage" not in out
    assert changed_in_git(project) == []


def test_experiment_shows_accuracies_not_costs_and_changes_only_params_lock_and_results(
    project: Path,
) -> None:
    """Issue 18's proof: `dvc exp run -S train.logreg.C=0.1` in the workspace."""
    base = read_json(project / "metrics/logreg/1.json")["test"]["accuracy"]
    sh(["dvc", "exp", "run", "-S", "train.logreg.C=0.1", "-n", "c01"], project)
    show = json.loads(sh(["dvc", "exp", "show", "--json"], project).stdout)
    exp = next(e for b in show for e in b.get("experiments") or [] if e["name"] == "c01")
    metrics = exp["revs"][0]["data"]["metrics"]

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
        return out

    columns = {k: v for f in metrics.values() for k, v in flat(f["data"]).items()}
    for model in MODELS:
        assert 0 <= columns[f"acc.{model}.1"] <= 1, model
    assert columns["acc.logreg.1"] != base
    assert {f"fewshot.{m}.1.k1" for m in MODELS[:3]} <= set(columns)
    timing = [c for c in columns if any(w in c for w in ("wall", "rss", "gpu", "time", "cpu"))]
    assert timing == [] and len(columns) < 80, (timing, len(columns))
    assert all(isinstance(v, int | float) for v in columns.values())  # no ids, names, lists

    changed = changed_in_git(project)
    assert "params.yaml" in changed and "dvc.lock" in changed
    others = [p for p in changed if p not in ("params.yaml", "dvc.lock")]
    assert others and all(p.startswith(RESULTS) for p in others), changed
    assert not any(p.startswith("data/") for p in changed)
