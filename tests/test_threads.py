"""Each stage picks its threads from the CPUs it may use; env vars and params override."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from npdecode.threads import (
    ENV_VARS,
    available_cpus,
    cgroup_quota,
    choose_threads,
    parse_cpu_max,
)


def test_environment_beats_param_beats_the_machine():
    assert choose_threads({"OMP_NUM_THREADS": "3"}, 5, 8, "cpus") == (
        3,
        "OMP_NUM_THREADS=3 in the environment",
    )
    assert choose_threads({"MKL_NUM_THREADS": "2"}, 5, 8, "cpus")[0] == 2
    assert choose_threads({}, 5, 8, "cpus") == (5, "params threads")
    assert choose_threads({}, None, 8, "cpus") == (8, "cpus")
    # nonsense in the environment is not a choice
    assert choose_threads({"OMP_NUM_THREADS": "0", "MKL_NUM_THREADS": "x"}, None, 4, "c")[0] == 4


def test_the_tightest_limit_wins():
    assert available_cpus(64, None, None) == (64, "CPUs this process may use: CPU affinity 64")
    n, why = available_cpus(64, 1.5, "8")
    assert n == 2 and "cgroup CPU quota 2" in why and "SLURM_CPUS_PER_TASK 8" in why
    assert available_cpus(64, None, "4")[0] == 4
    assert available_cpus(2, 16.0, "8")[0] == 2
    assert available_cpus(8, 0.2, None)[0] == 1  # a fraction of a CPU still gets one thread


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("max 100000", None), ("150000 100000", 1.5), ("200000 100000\n", 2.0), ("junk", None)],
)
def test_parse_cpu_max(text, cpus):
    assert parse_cpu_max(text) == cpus


def test_cgroup_v2_quota_of_the_process_or_any_parent(tmp_path: Path):
    root = tmp_path / "cgroup"
    own = root / "user.slice" / "job"
    own.mkdir(parents=True)
    (root / "cpu.max").write_text("max 100000\n")
    (root / "user.slice" / "cpu.max").write_text("300000 100000\n")
    (own / "cpu.max").write_text("max 100000\n")
    proc = tmp_path / "cgroup.txt"
    proc.write_text("0::/user.slice/job\n")
    assert cgroup_quota(root, proc) == 3.0
    (own / "cpu.max").write_text("50000 100000\n")
    assert cgroup_quota(root, proc) == 0.5


def test_cgroup_v1_quota(tmp_path: Path):
    cpu = tmp_path / "cpu"
    cpu.mkdir()
    (cpu / "cpu.cfs_quota_us").write_text("400000\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_quota(tmp_path, tmp_path / "missing") == 4.0
    (cpu / "cpu.cfs_quota_us").write_text("-1\n")  # no quota
    assert cgroup_quota(tmp_path, tmp_path / "missing") is None


def _stage_log(tmp_path: Path, env: dict[str, str], threads: int | None = None) -> str:
    """stderr of a stage (bin, which fails at once on a missing file) run with `env`."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"sessions": [5], "threads": threads}))
    base = {k: v for k, v in os.environ.items() if k not in (*ENV_VARS, "SLURM_CPUS_PER_TASK")}
    proc = subprocess.run(
        [sys.executable, "-m", "npdecode.stages.bin", "5"],
        cwd=tmp_path,
        env={**base, **env},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr  # no NWB: the point is the log line before it
    return proc.stderr


def test_a_stage_logs_its_choice_and_honours_overrides(tmp_path: Path):
    cpus, _ = available_cpus(len(os.sched_getaffinity(0)), cgroup_quota(), None)
    log = _stage_log(tmp_path, {})
    assert f"threads for torch and BLAS: {cpus} (CPUs this process may use: CPU affinity" in log
    log = _stage_log(tmp_path, {"SLURM_CPUS_PER_TASK": "1"})
    assert "threads for torch and BLAS: 1 (" in log and "SLURM_CPUS_PER_TASK 1" in log
    log = _stage_log(tmp_path, {}, threads=3)
    assert "threads for torch and BLAS: 3 (params threads)" in log
    log = _stage_log(tmp_path, {"OMP_NUM_THREADS": "1"}, threads=3)
    assert "threads for torch and BLAS: 1 (OMP_NUM_THREADS=1 in the environment)" in log


def test_torch_and_blas_get_the_chosen_count():
    code = (
        "import torch, threadpoolctl\n"
        "from npdecode.threads import configure_threads\n"
        "n, why = configure_threads(None)\n"
        "pools = {p['internal_api']: p['num_threads'] for p in threadpoolctl.threadpool_info()}\n"
        "print(n, torch.get_num_threads(), max(pools.values()))\n"
    )
    base = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, "SLURM_CPUS_PER_TASK": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["1", "1", "1"]


def test_workers_fill_the_cpus_with_processes_of_the_stages_threads():
    from npdecode.threads import choose_workers

    assert choose_workers(3, 8, 1, "cpus") == (3, "params workers")
    assert choose_workers(None, 8, 1, "cpus") == (8, "cpus; 1 thread(s) each")
    assert choose_workers(None, 8, 3, "cpus")[0] == 2
    assert choose_workers(None, 2, 4, "cpus")[0] == 1  # never none
