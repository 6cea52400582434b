"""Temporary copies of this DVC project for tests that run real `git` and `dvc` commands
(built once per test session by the fixtures of tests/conftest.py).

A copy holds the project's src/, dvc.yaml, params.yaml (the package defaults, shrunk to a
small synthetic session plus any overrides), pyproject.toml, ignore files, slurm/ and the
*committed* .dvc/config (remote `proj` on /proj, shared cache settings), in a fresh git
repository. Never the workspace's params.yaml: after the README's `dvc exp run -S ...` it
holds the experiment's values, and the tests must pass in that workspace too
(`committed_text` reads the committed one where a test needs the file itself).

Commands run through `sh`, with the venv's bin/ first on PATH and PYTHONPATH pointing at
this repository's src/: like a user who has npdecode installed, so a stage that imported the
installed package instead of the copy's own src/ would be caught (see `add_import_trace`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from npdecode.params import Params, as_dict

PROJECT = Path(__file__).resolve().parents[1]
# Small enough that `dvc repro` takes seconds, and tuned strongly enough (tests only; the
# default difficulty is fixed) that accuracies are far from chance (1/7) on 14 test trials.
SMALL_PARAMS: dict[str, Any] = {
    "sessions": [1],
    "fetch": {"synthetic": {"n_units": 24, "n_images": 6, "n_repeats": 12, "tuning_strength": 5.0}},
    # 12 repeats leave ~5-8 training presentations per image: k = 10 is refused
    "fewshot": {"shots": [1, 3], "steps": 100},
    # one minute of the default reaching twin; few epochs and steps (the mechanics, not scores)
    "reach": {"twin_minutes": 1.0, "max_epochs": 5, "fewshot": {"minutes": [0.1], "steps": 20}},
}
TRACE_ENV = "NPDECODE_TEST_IMPORT_TRACE"
_TRACE_CODE = f"""

# test instrumentation (tests/helpers.py): record which copy of npdecode was imported
import os as _os

if _os.environ.get("{TRACE_ENV}"):
    with open(_os.environ["{TRACE_ENV}"], "a") as _trace:
        _trace.write(__file__ + "\\n")
"""
_COPY = ("src", "slurm", "dvc.yaml", "pyproject.toml", ".dvcignore", ".gitignore")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.egg-info", "logs")


def deep_update(base: dict, overrides: Mapping) -> dict:
    """Merge `overrides` into `base` in place (nested dicts merged key by key)."""
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def committed_text(path: str) -> str:
    """The text of `path` (relative to the repository) as committed at HEAD.

    The workspace copy may hold an experiment's edits (`dvc exp run -S` rewrites
    params.yaml); outside a git checkout the workspace copy is all there is.
    """
    proc = subprocess.run(
        ["git", "show", f"HEAD:{path}"], cwd=PROJECT, capture_output=True, text=True, check=False
    )
    return proc.stdout if proc.returncode == 0 else (PROJECT / path).read_text()


def make_project(dest: Path, overrides: Mapping | None = None) -> Path:
    """Copy the project into `dest`, a new git repo with one commit, and return `dest`.

    Args:
        dest: folder to create (must not exist).
        overrides: params.yaml values merged over `SMALL_PARAMS`, e.g. {"train": {"seed": 1}}.
    """
    dest.mkdir(parents=True)
    for name in _COPY:
        src = PROJECT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=_IGNORE)
        elif src.exists():
            shutil.copy2(src, dest / name)
    (dest / ".dvc").mkdir()
    for name in ("config", ".gitignore"):
        shutil.copy2(PROJECT / ".dvc" / name, dest / ".dvc" / name)
    params = as_dict(Params())  # = the committed params.yaml (tests/test_params.py)
    deep_update(params, SMALL_PARAMS)
    deep_update(params, overrides or {})
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["git", "init", "-q", "-b", "main"], dest)
    commit_all(dest, "project")
    return dest


def add_import_trace(project: Path) -> None:
    """Make the copy's npdecode append its own path to $NPDECODE_TEST_IMPORT_TRACE on import."""
    init = project / "src" / "npdecode" / "__init__.py"
    init.write_text(init.read_text() + _TRACE_CODE)


def traced_imports(trace: Path) -> list[Path]:
    """The npdecode `__init__.py` files imported while the trace was on, one per import."""
    return [Path(line) for line in trace.read_text().splitlines()] if trace.exists() else []


def copy_project(src: Path, dest: Path) -> Path:
    """A full copy (git history, DVC cache, outputs) of a project, minus DVC's tmp folder."""
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("tmp"))
    return dest


def sh(
    cmd: list[str], cwd: Path, check: bool = True, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `cmd` in `cwd` and return it (stdout, stderr as text); raise if it fails and `check`."""
    # no timeout: on a loaded machine a slow command is slow, not a failure
    proc = subprocess.run(cmd, cwd=cwd, env=command_env(env), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"`{' '.join(cmd)}` failed ({proc.returncode}) in {cwd}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def command_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for project commands: venv tools on PATH, an 'installed' npdecode, a git id."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(PROJECT / "src"),
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "npdecode tests",
        "GIT_AUTHOR_EMAIL": "tests@example.com",
        "GIT_COMMITTER_NAME": "npdecode tests",
        "GIT_COMMITTER_EMAIL": "tests@example.com",
    }
    env.pop(TRACE_ENV, None)
    return {**env, **(extra or {})}


def commit_all(project: Path, message: str) -> None:
    sh(["git", "add", "-A"], project)
    sh(["git", "commit", "-qm", message], project)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


# the tiny session of the stage tests (the `split_session` fixture): 24 units, 6 images +
# blank, 12 repeats
SPLIT_SESSION: dict[str, Any] = {
    "sessions": [1],
    "fetch": {"synthetic": {"n_units": 24, "n_images": 6, "n_repeats": 12}},
}


def copy_split_session(split_session: Path, dest: Path) -> Path:
    """A writable copy of the read-only `split_session` root."""
    shutil.copytree(split_session, dest)
    return dest


def build_reproduced_project(dest: Path) -> Path:
    """A small project at `dest`, traced, `dvc repro`-ed and committed (the session-scoped
    `reproduced` fixture of tests/conftest.py builds it once per test session)."""
    project = make_project(dest)
    add_import_trace(project)
    sh(["dvc", "repro"], project)
    commit_all(project, "baseline results")
    return project


def write_split_folder(
    out_dir: Path,
    session_id: int,
    counts: Any,
    pres: Any,
    units: Any,
    params: Any,
    bin_width_s: float,
    specimen_id: str | None = None,
) -> Any:
    """Split (P, T, U) counts as the split stage does and write the folder; return the data."""
    from npdecode.formats.split import write_split
    from npdecode.preprocess import make_split

    data, extra = make_split(
        session_id, counts, pres, units, params, bin_width_s=bin_width_s, specimen_id=specimen_id
    )
    write_split(out_dir, data, extra)
    return data


# A split stage that writes its first file, marks it and hangs: the process a test then
# kills (SIGKILL, SIGINT) mid-write, to check what a killed run leaves behind.
BLOCKING_SPLIT = """
import os, runpy, sys, time
import npdecode.formats.split as split_format

real = split_format.save_npz

def save_then_wait(path, **arrays):
    real(path, **arrays)
    with open(os.environ["NPDECODE_TEST_MARK"], "w") as mark:
        mark.write(str(path))
    time.sleep(600)

split_format.save_npz = save_then_wait
sys.argv = ["split", "1"]
runpy.run_module("npdecode.stages.split", run_name="__main__")
"""


def write_reach_days(
    layout: Any, names: tuple[str, ...], history: int = 4, seconds: float = 60.0
) -> list[tuple[Any, Path]]:
    """Each named session's macaque twin (`seconds` long) written under `layout`, split as
    the split stage does (40 ms bins, `history` bins), read back: [(ReachData, truth path)]."""
    from npdecode.formats.reach_split import load_reach, write_reach_split
    from npdecode.mat.read import read_mat
    from npdecode.params import ReachParams
    from npdecode.reaching.session import split_arrays
    from npdecode.sources.macaque_twin import TwinSettings, write_twin

    reach = ReachParams(history=history)
    out = []
    for name in names:
        mat, truth = layout.reach_mat(name), layout.reach_truth(name)
        mat.parent.mkdir(parents=True)
        write_twin(name, mat, truth, TwinSettings(duration_s=seconds))
        arrays, rows, units, _ = split_arrays(read_mat(mat, name), name, reach)
        meta = {"session_id": name, "dataset": "macaque", "bin_width_s": 0.04,
                "history": history, "target": "velocity", "units": "sorted"}  # fmt: skip
        write_reach_split(layout.reach_split_dir(name), arrays, rows, units, meta)
        out.append((load_reach(layout.reach_split_dir(name), name), truth))
    return out
