"""Bad input ends in one line that names what is wrong, exit status 2, and no output."""

import importlib
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from npdecode.paths import Layout


def _stage(tmp_path, stage, *args, params=None):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params or {"sessions": [5]}))
    return subprocess.run(
        [sys.executable, "-m", f"npdecode.stages.{stage}", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )


LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d \w+: ")  # the stage's progress log (e.g. its threads)


def _one_line(proc):
    """The one error line of a failed stage: status 2, no traceback, nothing but log lines."""
    lines = [line for line in proc.stderr.strip().splitlines() if not LOG_LINE.match(line)]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("npdecode "), proc.stderr
    return lines[0]


def test_typo_in_params(tmp_path):
    line = _one_line(
        _stage(tmp_path, "bin", "5", params={"sessions": [5], "bin": {"timesteps_per_frme": 3}})
    )
    assert (
        "unknown key 'bin.timesteps_per_frme'" in line
        and "did you mean 'bin.timesteps_per_frame'" in line
    )


def test_empty_session_list(tmp_path):
    assert "sessions is empty" in _one_line(_stage(tmp_path, "fetch", "5", params={"sessions": []}))


def test_session_not_in_params(tmp_path):
    assert "session 6 is not in params" in _one_line(_stage(tmp_path, "bin", "6"))


def test_missing_nwb_names_session_and_file(tmp_path):
    line = _one_line(_stage(tmp_path, "bin", "5"))
    assert "session 5" in line and "session_5.nwb does not exist" in line
    assert not Layout(tmp_path).binned(5).exists() and not (tmp_path / "data" / "binned").exists()


def test_missing_split_for_training(tmp_path):
    line = _one_line(_stage(tmp_path, "train", "logreg", "5"))
    assert "session 5" in line and "run the split stage" in line


STAGES = sorted(
    p.stem
    for p in (Path(__file__).resolve().parents[1] / "src/npdecode/stages").glob("*.py")
    if p.stem != "__init__"
)


@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")  # runpy, re-run
@pytest.mark.parametrize("stage", STAGES)
def test_help_says_what_the_stage_does(stage, capsys, monkeypatch):
    module = importlib.import_module(f"npdecode.stages.{stage}")
    monkeypatch.setattr(sys, "argv", [f"npdecode.stages.{stage}", "--help"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_module(f"npdecode.stages.{stage}", run_name="__main__")
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert module.__doc__.strip().splitlines()[0] in out
    assert f"usage: python -m npdecode.stages.{stage}" in out


def test_training_stages_start_without_sklearn_or_scipy_stats():
    # every stage process pays its imports (docs/cost.md): sklearn (logreg's fit) and
    # scipy.stats (t and binomial quantiles) are imported where they are used, not at start-up
    code = (
        "import sys, npdecode.stages.train, npdecode.stages.fewshot;"
        "print(sorted(m for m in ('sklearn', 'scipy.stats') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
