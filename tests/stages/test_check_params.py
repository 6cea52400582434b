"""params.yaml is validated on every `dvc repro`, before DVC removes any stage's outputs
(issue 17 class 9, issue 18 item 5): real `dvc repro` runs in a reproduced temp project."""

from __future__ import annotations

from pathlib import Path

import yaml

from npdecode.paths import Layout
from npdecode.stages.check_params import OK_TEXT
from tests.helpers import sh

PROJECT = Path(__file__).resolve().parents[2]


def _outputs(project: Path) -> dict[str, bytes]:
    """What a failed run must not touch: the trained models, the split, the metrics."""
    paths = sorted((project / "models").rglob("*.pt")) + sorted((project / "metrics").rglob("*"))
    paths += sorted((project / "data" / "split").rglob("*.npz"))
    return {str(p.relative_to(project)): p.read_bytes() for p in paths if p.is_file()}


def _edit(project: Path, change) -> None:
    path = project / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    change(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_invalid_params_stop_dvc_repro_before_any_stage_and_a_fix_costs_nothing(project):
    assert (project / "data" / "params.ok").read_text() == OK_TEXT
    good = (project / "params.yaml").read_text()
    before = _outputs(project)
    assert any(k.startswith("models/lstm/") for k in before)
    cases = {
        # a typo inside a tracked section: DVC would rerun train_lstm and delete its model
        "unknown key 'train.lstm.lrr'": lambda raw: raw["train"]["lstm"].update(lrr=0.1),
        # a wrong type in a tracked param
        "train.logreg.C must be float": lambda raw: raw["train"]["logreg"].update(C="big"),
        # read by no stage: DVC alone would see nothing to rerun
        "unknown key 'sesions'": lambda raw: raw.update(sesions=[2]),
        # dvc.yaml's foreach silently merges the duplicate
        "lists a session twice": lambda raw: raw.update(sessions=[1, 1]),
    }
    for message, change in cases.items():
        (project / "params.yaml").write_text(good)
        _edit(project, change)
        proc = sh(["dvc", "repro"], project, check=False)
        assert proc.returncode != 0, proc.stdout
        assert message in proc.stderr, proc.stderr
        assert "Running stage 'check_params'" in proc.stdout
        ran = [line for line in proc.stdout.splitlines() if line.startswith("Running stage")]
        assert ran == ["Running stage 'check_params':"], ran
        assert _outputs(project) == before, message
    (project / "params.yaml").write_text(good)
    out = sh(["dvc", "repro"], project).stdout
    ran = [line for line in out.splitlines() if line.startswith("Running stage")]
    assert set(ran) <= {"Running stage 'check_params':"}, ran  # nothing retrained
    assert "Stage 'train_lstm@1' didn't change" in out
    assert _outputs(project) == before
    assert "up to date" in sh(["dvc", "status"], project).stdout


def test_a_valid_edit_reruns_only_what_it_changes(project):
    _edit(project, lambda raw: raw["train"]["logreg"].update(C=0.1))
    out = sh(["dvc", "repro"], project).stdout
    ran = {line for line in out.splitlines() if line.startswith("Running stage")}
    assert "Running stage 'check_params':" in ran and "Running stage 'train_logreg@1':" in ran
    assert "Running stage 'fetch@1':" not in ran and "Running stage 'train_lstm@1':" not in ran
    assert (Layout(project).params_ok).read_text() == OK_TEXT
