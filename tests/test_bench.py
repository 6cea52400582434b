"""The benchmarks stay runnable: the GPU check at CPU smoke size, the pipeline bench's stage list.

Speed itself is never asserted here (bench/ prints it); these only catch scripts that rot.
"""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from tests.helpers import PROJECT, command_env

sys.path.insert(0, str(PROJECT / "bench"))
import bench_pipeline  # noqa: E402


def test_gpu_check_runs_every_model_at_cpu_smoke_size(tmp_path) -> None:
    out = tmp_path / "gpu_check.json"
    cmd = [sys.executable, "bench/gpu_check.py", "--cpu-smoke", "--json", str(out)]
    run = subprocess.run(
        cmd, cwd=PROJECT, env=command_env(), capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [r["model"] for r in rows] == ["lstm", "transformer", "stgat", "multisession"]
    assert all(r["ok"] and r["cpu_gpu_agreement"] == 1.0 for r in rows)
    assert rows[-1]["sessions"] == 2


def test_pipeline_bench_runs_every_dvc_yaml_stage_as_dvc_would(tmp_path) -> None:
    dvc_yaml = yaml.safe_load((PROJECT / "dvc.yaml").read_text())
    commands = dict(
        bench_pipeline.stage_commands(
            dvc_yaml, [1, 2], ["stgat"], ["indy_20160622_01"], ["lstm"], ["poyo"]
        )
    )
    assert commands["reach_train@lstm-indy_20160622_01"][1:] == [
        "-m",
        "npdecode.stages.train",
        "lstm",
        "indy_20160622_01",
    ]
    assert commands["train_lstm@2"][1:] == ["-m", "npdecode.stages.train", "lstm", "2"]
    assert commands["train_stgat@stgat-1"][1:] == ["-m", "npdecode.stages.train", "stgat", "1"]
    assert commands["report"][1:] == ["-m", "npdecode.stages.report"]
    assert commands["train_multisession_poyo@poyo"][1:] == [
        "-m",
        "npdecode.stages.poyo_multisession",
    ]
    expected = sum(
        (1 if n.startswith("reach_") or s.get("foreach") == "${optional_shared}" else 2)
        if "foreach" in s or "matrix" in s
        else 1
        for n, s in dvc_yaml["stages"].items()
    )
    assert len(commands) == expected
    assert all(argv[0] == sys.executable for argv in commands.values())
    assert "stgat" not in " ".join(dict(bench_pipeline.stage_commands(dvc_yaml, [1], [])))
