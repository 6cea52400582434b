"""dvc.yaml declares exactly what each stage reads and writes, so DVC reruns only what changed."""

import importlib
import re
import typing
from pathlib import Path

import pytest
import yaml

from npdecode.devtools import code_deps
from npdecode.params import OptionalModel, ReachDeepModel
from npdecode.paths import Layout
from tests.helpers import committed_text

PROJECT = Path(__file__).resolve().parents[1]
CMD = re.compile(
    r"python -m npdecode\.stages\.(\w+)(?: (\w+|\$\{item\.model\}))?"
    r"(?: \$\{item(?:\.session)?\})?$"
)
OPTIONAL = typing.get_args(OptionalModel)
REACH_MODELS = typing.get_args(ReachDeepModel)  # what params `reach.models` may list


def _stages() -> dict[str, dict]:
    return yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]


def _body(stage: dict) -> dict:
    return stage.get("do", stage)


def _paths(entries: list) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]


def _render(text: str, item: int = 1, model: str = "stgat") -> str:
    for name, value in (("item", item), ("sessions[0]", item), ("item.session", item)):
        text = text.replace(f"${{{name}}}", str(value))
    return text.replace("${item.model}", model)


STAGES = sorted(_stages())


@pytest.mark.parametrize("name", STAGES)
def test_stage_params_equal_what_the_module_reads(name):
    body = _body(_stages()[name])
    module, model = CMD.search(body["cmd"]).groups()
    mod = importlib.import_module(f"npdecode.stages.{module}")
    # a reaching stage (reach_*) declares what the module reads for a reaching session
    wanted = getattr(mod, "REACH_PARAMS", ()) if name.startswith("reach_") else mod.PARAMS
    models = REACH_MODELS if name.startswith("reach_") else OPTIONAL
    for m in models if model == "${item.model}" else [model]:  # a matrix stage: each model
        declared = wanted[m] if isinstance(wanted, dict) else wanted
        keys = [k.replace("${item.model}", m or "") for k in body.get("params", [])]
        assert sorted(keys) == sorted(declared)
    assert f"src/npdecode/stages/{module}.py" in body["deps"]


@pytest.mark.parametrize("name", STAGES)
def test_per_session_stages_run_foreach_session(name):
    stage = _stages()[name]
    cmd = _body(stage)["cmd"]
    reach = name.startswith("reach_")  # the reaching data set's own session list
    if "matrix" in stage:  # optional models: every listed model on every session
        want = (
            {"model": "${reach.models}", "session": "${reach_sessions}"}
            if reach
            else {"model": "${optional_models}", "session": "${sessions}"}
        )
        assert stage["matrix"] == want
        assert cmd.endswith(" ${item.model} ${item.session}")
        return
    per_session = "${item}" in cmd
    assert per_session == (
        stage.get("foreach") == ("${reach_sessions}" if reach else "${sessions}")
    )


def test_optional_models_have_train_and_fewshot_stages_by_name_and_off_by_default():
    # `dvc exp run -S 'optional_models=[stgat]' train_stgat` (README): the stage groups carry
    # the model's name and have a stage only for a model the list names
    stages = _stages()
    # one stage group (train_stgat, fewshot_stgat) runs every listed model: stgat, poyo
    assert set(OPTIONAL) == {"stgat", "poyo"}
    for model in ("stgat",):
        for group in (f"train_{model}", f"fewshot_{model}"):
            assert stages[group]["matrix"]["model"] == "${optional_models}", group
    params = yaml.safe_load(committed_text("params.yaml"))
    assert params["optional_models"] == []  # off by default: docs/cost.md, "ST-GAT"


def test_every_declared_params_key_exists_in_params_yaml():
    params = yaml.safe_load(committed_text("params.yaml"))
    for name, stage in _stages().items():
        models = (
            ("",)
            if "matrix" not in stage
            else REACH_MODELS
            if name.startswith("reach_")
            else OPTIONAL
        )
        for key in (
            k.replace("${item.model}", m) for k in _body(stage).get("params", []) for m in models
        ):
            node = params
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"{name}: {key}"
                node = node[part]


def test_artifact_paths_match_the_layout():
    written = set()
    for stage in _stages().values():
        body = _body(stage)
        for section in ("outs", "metrics", "plots"):
            written.update(_render(p) for p in _paths(body.get(section)))
    layout = Layout(Path("."))
    expected = [
        layout.raw_dir(1),
        layout.binned(1),
        layout.binned_units(1),
        layout.binned_presentations(1),
        layout.bin_report(1),
        layout.clean(1),
        layout.clean_report(1),
        layout.split_dir(1),
        layout.split_report(1),
        layout.reference(1),
        layout.model("logreg", 1),
        layout.metrics("logreg", 1),
        layout.predictions("logreg", 1),
        layout.fewshot("logreg", 1),
        layout.scores("logreg_1"),
        layout.scores("fewshot_logreg_1"),
        layout.scores("reference_1"),
        layout.scores("multisession"),
        layout.results_dir,
        layout.plots_dir,
        layout.reach_raw_dir("1"),
        layout.reach_fetch_report("1"),
        layout.reach_split_dir("1"),
        layout.reach_split_report("1"),
        layout.reach_metrics("reference", "1"),
        layout.reach_predictions("reference", "1"),
        layout.reach_metrics("stgat", "1"),
        layout.reach_predictions("stgat", "1"),
        layout.reach_fewshot("stgat", "1"),
        layout.scores("reach_reference_1"),
        layout.scores("reach_stgat_1"),
        layout.scores("reach_fewshot_stgat_1"),
    ]
    missing = [str(p) for p in expected if str(p) not in written]
    assert not missing, missing


def test_stage_inputs_are_produced_by_a_stage_or_are_code_or_params():
    stages = _stages()
    produced = set()
    for stage in stages.values():
        body = _body(stage)
        for section in ("outs", "metrics", "plots"):
            produced.update(_render(p) for p in _paths(body.get(section)))
    for name, stage in stages.items():
        for dep in _body(stage).get("deps", []):
            dep = _render(dep)
            if dep.startswith("src/") or dep == "params.yaml":  # code, or check_params' input
                assert (PROJECT / dep).exists(), f"{name}: {dep}"
                continue
            covered = any(
                dep == p or dep.startswith(p + "/") or p.startswith(dep + "/") for p in produced
            )
            assert covered, f"{name}: {dep} is produced by no stage"


@pytest.mark.parametrize("model", ["logreg", "lstm", "transformer", "stgat"])
def test_train_stage_writes_model_metrics_and_curves(model):
    name = f"train_{model}"
    body = _body(_stages()[name])
    assert "src/npdecode/decode/training.py" in body["deps"]  # scoring goes through it
    # its code reruns it (the whole models/ folder once every model there is imported)
    assert {f"src/npdecode/models/{model}.py", "src/npdecode/models"} & set(body["deps"])

    def paths(section: str) -> list[str]:
        return [_render(p, model=model).replace("/1", "/${item}") for p in _paths(body[section])]

    assert f"models/{model}/${{item}}.pt" in paths("outs")
    assert f"metrics/{model}/${{item}}.json" in paths("outs")
    scores = [_render(p, model=model).replace("_1.", "_${item}.") for p in _paths(body["metrics"])]
    assert scores == [f"scores/{model}_${{item}}.json"]
    if model != "logreg":  # DVCLive learning curves, drawn by `dvc plots show`
        assert f"dvclive/{model}/${{item}}/plots/metrics" in paths("plots")


def test_code_deps_are_exactly_the_modules_each_stage_imports():
    # a change to any module a stage runs (metrics, formats, params, ...) must rerun it,
    # and no stage reruns for code it never runs; fix with `python -m npdecode.devtools.code_deps --write`
    assert code_deps.drift() == {}


def test_code_deps_follow_lazy_imports_and_modules_run_by_name():
    fetch = {str(p.relative_to(PROJECT)) for p in code_deps.closure("npdecode.stages.fetch")}
    # the AllenSDK side runs in a subprocess (`python -m npdecode.sources.allen_runner`)
    assert "src/npdecode/sources/allen_runner.py" in fetch
    assert "src/npdecode/sources/download.py" in fetch
    report = {str(p.relative_to(PROJECT)) for p in code_deps.closure("npdecode.stages.report")}
    assert "src/npdecode/nwb/read.py" in report  # the raster plot reads spikes
    assert "src/npdecode/decode/training.py" not in report  # and never trains


def test_a_folder_dep_counts_only_when_the_stage_runs_all_of_it():
    stage = {"cmd": "env PYTHONPATH=src python -m npdecode.stages.bin ${item}"}
    deps = code_deps.required_deps(stage)
    assert "src/npdecode/nwb" not in deps  # bin reads NWB but never writes it
    assert "src/npdecode/nwb/read.py" in deps


def test_no_stage_module_imports_another_stage_module():
    stages_dir = PROJECT / "src" / "npdecode" / "stages"
    for path in sorted(stages_dir.glob("*.py")):
        imported = code_deps._imported(path)
        others = {m for m in imported if m.startswith("npdecode.stages.")}
        assert not others, f"{path.name} imports {sorted(others)}: move the shared piece out"


def test_every_stage_runs_after_check_params():
    """DVC runs a stage's ancestors first: check_params must be an ancestor of every stage,
    so invalid params stop `dvc repro <any stage>` before outputs are removed."""
    stages = {name: _body(stage) for name, stage in _stages().items()}
    outs = {
        name: {
            _render(p) for section in ("outs", "metrics", "plots") for p in _paths(b.get(section))
        }
        for name, b in stages.items()
    }

    def parents(name: str) -> set[str]:
        deps = [_render(d) for d in stages[name].get("deps", []) if not d.startswith("src/")]
        return {
            other
            for other, produced in outs.items()
            for dep in deps
            for p in produced
            if dep == p or dep.startswith(p + "/") or p.startswith(dep + "/")
        }

    for name in stages:
        seen, todo = set(), [name]
        while todo:
            for parent in parents(todo.pop()) - seen:
                seen.add(parent)
                todo.append(parent)
        assert name == "check_params" or "check_params" in seen, name
    assert "params.yaml" in stages["check_params"]["deps"]  # any edit reruns the check


def test_producing_stage_names_the_stage_of_every_output_dvc_yaml_declares():
    # every out, metric and plot of every stage, ST-GAT's included, expanded for two
    # sessions (one a string id) and each matrix value: the repair hint names a real stage
    from npdecode.paths import _out_templates, producing_stage

    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    checked = 0
    for template, stage in _out_templates(stages):
        name = stage.split("@")[0]
        combos: list[dict[str, str]] = [{"item": s} for s in ("7", "indy_20160407_02")]
        if "matrix" in stages[name]:
            matrix = stages[name]["matrix"]
            combos = [{"item.model": "stgat", "item.session": s} for s in ("7", "indy_x")]
            assert set(matrix) == {"model", "session"}
        for values in combos:
            path, want = template, stage
            for key, value in values.items():
                path = path.replace(f"${{{key}}}", value)
                want = want.replace(f"${{{key}}}", value)
            assert producing_stage(path) == want, path
            assert producing_stage(f"/elsewhere/{path}/inside.bin") == want, path
            checked += 1
    assert checked > 50
    assert producing_stage("metrics/stgat/1.json") == "train_stgat@stgat-1"
    assert producing_stage("data/reach/indy_20160407_02/bins.npz") == "reach_split@indy_20160407_02"
    assert (
        producing_stage("metrics/reach/lstm/indy_20160407_02.json")
        == "reach_train@lstm-indy_20160407_02"
    )
    assert producing_stage("notes/nothing.txt") is None
