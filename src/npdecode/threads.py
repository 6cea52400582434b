"""How many CPU threads a stage gives torch and the BLAS libraries.

By default as many as the CPUs this process may use: the smallest of its CPU affinity
(`taskset`, cgroup cpusets), the cgroup CPU quota (`cpu.max`: containers, systemd
slices) and SLURM's `SLURM_CPUS_PER_TASK`. Without this, torch starts one thread per
core of the machine, and runs that share cores (queued experiments, jobs on one node, a
CI box) slow each other down tens of times: torch's threads busy-wait for each other.

Overrides, strongest first: the usual environment variables (`OMP_NUM_THREADS`,
`MKL_NUM_THREADS`, `OPENBLAS_NUM_THREADS`: per run, e.g. `OMP_NUM_THREADS=1 dvc queue start
-j 2`), then params `threads` (per project). Pure functions decide; `configure_threads`
reads the machine, applies the choice and returns what it chose and why, for the log.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
CGROUP_ROOT = Path("/sys/fs/cgroup")
T = TypeVar("T")


def choose_threads(
    env: Mapping[str, str], param: int | None, cpus: int, cpus_why: str
) -> tuple[int, str]:
    """(threads, why): the first positive integer among `ENV_VARS`, else `param`, else `cpus`."""
    for name in ENV_VARS:
        value = env.get(name, "").strip()
        if value.isdigit() and int(value) >= 1:
            return int(value), f"{name}={value} in the environment"
    if param is not None:
        return param, "params threads"
    return cpus, cpus_why


def available_cpus(affinity: int, quota: float | None, slurm: str | None) -> tuple[int, str]:
    """(CPUs this process may use, why): the smallest of its affinity, the cgroup quota
    (rounded up: 1.5 CPUs of quota keep 2 threads busy) and SLURM_CPUS_PER_TASK."""
    limits = {"CPU affinity": affinity}
    if quota is not None:
        limits["cgroup CPU quota"] = max(1, math.ceil(quota))
    if slurm is not None and slurm.strip().isdigit() and int(slurm) >= 1:
        limits["SLURM_CPUS_PER_TASK"] = int(slurm)
    n = min(limits.values())
    return n, "CPUs this process may use: " + ", ".join(f"{k} {v}" for k, v in limits.items())


def parse_cpu_max(text: str) -> float | None:
    """CPUs allowed by a cgroup v2 `cpu.max` ("<quota> <period>" or "max <period>")."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_quota(root: Path = CGROUP_ROOT, proc: Path = Path("/proc/self/cgroup")) -> float | None:
    """The tightest CPU quota of this process's cgroup and its ancestors, in CPUs; None if none.

    cgroup v2: `cpu.max` of each folder from the process's own cgroup up to the root;
    cgroup v1: `cpu.cfs_quota_us / cpu.cfs_period_us` of the cpu controller's mount.
    """
    quotas: list[float] = []
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        lines = []
    own = next((line.split(":", 2)[2] for line in lines if line.startswith("0::")), None)
    if own is not None:
        folder = root / own.lstrip("/")
        for path in (folder, *folder.parents):
            if root not in (path, *path.parents):
                break
            quota = _read(path / "cpu.max", parse_cpu_max)
            if quota is not None:
                quotas.append(quota)
    for v1 in (root / "cpu", root / "cpu,cpuacct"):
        us = _read(v1 / "cpu.cfs_quota_us", float)
        period = _read(v1 / "cpu.cfs_period_us", float)
        if us is not None and period and us > 0:
            quotas.append(us / period)
    return min(quotas) if quotas else None


def _read(path: Path, parse: Callable[[str], T]) -> T | None:
    """`parse` of a small file's stripped text; None if it is missing or unparsable."""
    try:
        return parse(path.read_text().strip())
    except (OSError, ValueError):
        return None


def machine_cpus() -> tuple[int, str]:
    """(CPUs this process may use, why), read from the machine (`available_cpus`)."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return available_cpus(affinity or 1, cgroup_quota(), os.environ.get("SLURM_CPUS_PER_TASK"))


def choose_workers(param: int | None, cpus: int, threads: int, cpus_why: str) -> tuple[int, str]:
    """(worker processes, why): params `workers`, else as many as `cpus` hold processes of
    `threads` threads (at least 1)."""
    if param is not None:
        return param, "params workers"
    return max(1, cpus // threads), f"{cpus_why}; {threads} thread(s) each"


def configure_workers(param: int | None, threads: int) -> tuple[int, str]:
    """(worker processes, why) for a stage that trains independent learners side by side
    (`npdecode.decode.pool`), each with `threads` threads."""
    cpus, cpus_why = machine_cpus()
    return choose_workers(param, cpus, threads, cpus_why)


def configure_threads(param: int | None) -> tuple[int, str]:
    """Choose this stage's threads, apply them to torch and BLAS, and return (threads, why).

    The choice also goes into `OMP_NUM_THREADS` and friends where unset, so libraries
    imported later and child processes (the AllenSDK runner, scikit-learn workers, few-shot
    workers) keep it.
    """
    cpus, cpus_why = machine_cpus()
    n, why = choose_threads(os.environ, param, cpus, cpus_why)
    for name in ENV_VARS:
        os.environ.setdefault(name, str(n))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # a scikit-learn dependency, so normally present
        pass
    else:
        threadpool_limits(limits=n)
    return n, why
