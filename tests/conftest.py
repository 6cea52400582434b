"""Shared fixtures: small synthetic sessions written as real NWB files, temp DVC projects."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from npdecode.params import SyntheticParams
from npdecode.synthetic import SyntheticSession, as_record, make_session

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
PROJECT = Path(__file__).resolve().parents[1]
SMALL = SyntheticParams(n_units=30, n_images=10, n_repeats=12, n_blocks=3, seed=0)


@pytest.fixture(scope="session")
def small_session() -> SyntheticSession:
    """A small synthetic session (30 units, 10 images + blank, 12 repeats)."""
    return make_session(SMALL, 7)


@pytest.fixture(scope="session")
def small_nwb(small_session: SyntheticSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small session written as an Allen-format NWB file (read-only: copy before mutating)."""
    from npdecode.nwb import write_session_nwb

    path = tmp_path_factory.mktemp("nwb") / "session_7.nwb"
    write_session_nwb(path, as_record(small_session))
    return path


def deep_update(base: dict, overrides: dict) -> dict:
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_update(base[k], v)
        else:
            base[k] = v
    return base


SMALL_PARAMS = {
    "sessions": [1],
    "fetch": {"synthetic": {"n_units": 30, "n_images": 10, "n_repeats": 12}},
}


def make_project(dest: Path, overrides: dict | None = None) -> Path:
    """A git + DVC project at `dest`: this repo's code, dvc.yaml and params (with overrides).

    Stage commands find the package through PYTHONPATH (set by `run`), so the copy's
    own src/ is what runs.
    """
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        PROJECT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    for name in ("dvc.yaml", "pyproject.toml", ".dvcignore"):
        if (PROJECT / name).exists():
            shutil.copy(PROJECT / name, dest / name)
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    deep_update(params, SMALL_PARAMS)
    deep_update(params, overrides or {})
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "config", "user.email", "test@example.com"], dest)
    run(["git", "config", "user.name", "test"], dest)
    run(["dvc", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "project"], dest)
    return dest


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command in `cwd` with the copied project's src/ on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": str(cwd / "src"), "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc
