"""The macaque reaching sessions through the pipeline's stages (issue 22, phase 2).

The happy path is the shared reproduced project (`dvc repro` of the default, which holds
one small twin); bad inputs run the stage functions and the stage command directly.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from npdecode.cli import check_session
from npdecode.errors import DataError, NpdecodeError
from npdecode.params import Params, ReachParams, as_dict
from npdecode.paths import Layout
from npdecode.stages import fetch, split
from tests.helpers import SMALL_PARAMS, sh

NAME = "indy_20160622_01"  # the default reaching session (params.yaml)
pytestmark = pytest.mark.integration


def _params(**reach: object) -> Params:
    return dataclasses.replace(
        Params(), reach_sessions=(NAME,), reach=ReachParams(**{"twin_minutes": 1.0, **reach})
    )


def test_repro_decodes_the_reaching_twin_with_intervals(reproduced: Path) -> None:
    layout = Layout(reproduced)
    ref = json.loads(layout.reach_metrics("reference", NAME).read_text())
    assert set(ref["test"]) == {"wiener", "kalman", "ideal"}
    lstm = json.loads(layout.reach_metrics("lstm", NAME).read_text())
    for m in (*ref["test"].values(), lstm["test"]):
        assert m["r2_lo"] <= m["r2_hi"] and m["n"] == ref["n_test"] > 0
        assert 0.3 < m["r2"] <= 1.0  # the twin's units are tuned to velocity: all decode it
    # paired comparisons on the same test blocks: LSTM vs each reference
    assert {(p["a"], p["b"]) for p in lstm["paired"]} == {
        ("lstm", "ideal"), ("lstm", "kalman"), ("lstm", "wiener")
    }  # fmt: skip
    # what DVC shows: R² as Allen's accuracies, its interval apart
    shown = json.loads(sh(["dvc", "metrics", "show", "--json"], reproduced).stdout)
    files = next(iter(shown.values()))["data"]
    scores = files[f"scores/reach_lstm_{NAME}.json"]["data"]
    assert scores["r2"]["lstm"][NAME] == pytest.approx(lstm["test"]["r2"])
    assert scores["interval"]["r2_lo"]["lstm"][NAME] == pytest.approx(lstm["test"]["r2_lo"])
    assert f"scores/reach_fewshot_lstm_{NAME}.json" in files
    # the split report records the still periods and block edges
    report = json.loads(layout.reach_split_report(NAME).read_text())
    assert {"still_seconds_excluded", "windows_dropped_at_edges"} <= set(report)
    assert report["windows_dropped_at_edges"] > 0  # every block edge drops h - 1 windows


def test_report_has_the_reaching_table_plots_and_comparisons(reproduced: Path) -> None:
    summary = pd.read_csv(reproduced / "results/reach_summary.csv")
    assert set(summary["decoder"]) == {"wiener", "kalman", "ideal", "lstm"}
    assert (summary["session_id"] == NAME).all() and (summary["monkey"] == "indy").all()
    comparisons = pd.read_csv(reproduced / "results/comparisons.csv")
    reach = comparisons[comparisons["kind"] == "reach_r2"]
    assert len(reach) == 3 + 3  # the references' pairs, and the LSTM against each
    assert (reach["difference_lo"] <= reach["difference_hi"]).all()
    fewshot = pd.read_csv(reproduced / "results/reach_fewshot.csv")
    assert list(fewshot["minutes"]) == SMALL_PARAMS["reach"]["fewshot"]["minutes"]
    for png in ("reach_traces.png", "reach_r2_by_date.png", "reach_fewshot.png"):
        assert (reproduced / "plots" / png).read_bytes()[:4] == b"\x89PNG"


def test_exp_run_selects_another_reaching_session(project: Path) -> None:
    other = "loco_20170210_03"
    sh(
        ["dvc", "exp", "run", "-S", f"reach_sessions=[{other}]", f"reach_reference@{other}"],
        project,
    )
    ref = json.loads(Layout(project).reach_metrics("reference", other).read_text())
    assert ref["n_units"] > 150  # Loco: M1 + S1, 192 channels
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["reach_sessions"] == [other]


def test_a_name_the_record_lacks_is_refused_in_one_line(tmp_path: Path) -> None:
    params = dataclasses.replace(_params(), reach_sessions=("indy_20990101_01",))
    with pytest.raises(DataError, match="unknown macaque session 'indy_20990101_01'"):
        fetch.main(params, "indy_20990101_01", tmp_path)
    assert not Layout(tmp_path).reach_fetch_report("indy_20990101_01").exists()
    with pytest.raises(NpdecodeError, match="nor `reach_sessions`"):
        check_session(_params(), "loco_20170210_03")


def test_a_recording_too_short_for_the_blocks_leaves_no_split(tmp_path: Path) -> None:
    params = _params(twin_minutes=0.5, bin_width_s=0.2, history=100)
    fetch.main(params, NAME, tmp_path)
    with pytest.raises(DataError, match=rf"session {NAME}: split train has no window of 100 bins"):
        split.main(params, NAME, tmp_path)
    assert not Layout(tmp_path).reach_split_dir(NAME).exists()


def test_a_truncated_mat_stops_the_split_stage_with_one_line(tmp_path: Path) -> None:
    params = _params()
    fetch.main(params, NAME, tmp_path)
    mat = Layout(tmp_path).reach_mat(NAME)
    mat.write_bytes(mat.read_bytes()[: mat.stat().st_size // 2])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(as_dict(params), sort_keys=False))
    run = sh([sys.executable, "-m", "npdecode.stages.split", NAME], tmp_path, check=False)
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and NAME in errors[0] and f"{NAME}.mat" in errors[0], run.stderr
    assert not Layout(tmp_path).reach_split_dir(NAME).exists()
