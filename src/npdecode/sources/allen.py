"""Run `npdecode.sources.allen_runner` in the separate AllenSDK environment, from the main environment.

AllenSDK 2.16.2 pins numpy < 2 and pandas 1.5, which the main environment (numpy 2,
pandas >= 2, torch) cannot share. The fetch stage and `npdecode.sources.sessions` therefore run
`<fetch.allen.python> -m npdecode.sources.allen_runner ...` as a subprocess, with this checkout's `src/`
first on PYTHONPATH so both sides run the same npdecode code. Its logs and progress bars
go straight to the terminal; its answer (or its one-line error) comes back as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import npdecode
from npdecode.errors import DataError, ParamsError
from npdecode.params import AllenParams
from npdecode.paths import Layout

log = logging.getLogger(__name__)
SETUP = "bash scripts/setup_allen_env.sh"


def allen_python(params: AllenParams, root: Path) -> Path:
    """The AllenSDK environment's python: `fetch.allen.python`, relative to the project root."""
    given = Path(params.python)
    if given.is_absolute() or "/" in params.python:
        python = given if given.is_absolute() else root / given
    else:
        found = shutil.which(params.python)
        python = Path(found) if found else root / given
    if not python.exists():
        raise ParamsError(
            f"fetch.allen.python: {python} does not exist. Create the AllenSDK environment "
            f"with `{SETUP}` (or point fetch.allen.python at the python of one)"
        )
    return python


def policy_args(params: AllenParams) -> list[str]:
    """The `npdecode.sources.allen_runner` options that carry `fetch.allen`."""
    return [
        "--api-url",
        params.api_url,
        "--timeout-s",
        repr(params.timeout_s),
        "--max-tries",
        str(params.max_tries),
        "--backoff-s",
        repr(params.backoff_s),
    ]


def run_allen(params: AllenParams, root: Path, args: list[str]) -> dict:
    """Run `python -m npdecode.sources.allen_runner <args>` in the AllenSDK env and return its JSON answer.

    Raises:
        ParamsError: `fetch.allen.python` does not exist.
        DataError: the command reported an error (its message, which names the session
            and file), or it died before answering (its traceback is above).
    """
    python = allen_python(params, root)
    src = str(Path(npdecode.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="npdecode-allen-") as tmp:
        result = Path(tmp) / "result.json"
        cmd = [str(python), "-m", "npdecode.sources.allen_runner", *args, "--result", str(result)]
        log.info("running in the AllenSDK environment: %s", " ".join(cmd))
        proc = subprocess.run(cmd, env=env, cwd=root, check=False)
        answer = json.loads(result.read_text()) if result.exists() else None
    if answer is not None and "error" in answer:
        raise DataError(answer["error"])
    if proc.returncode != 0 or answer is None:
        raise DataError(
            f"the AllenSDK environment ({python}) failed with exit status {proc.returncode} "
            f"before answering; see its traceback above. If it cannot import allensdk or "
            f"npdecode, recreate it with `{SETUP}`"
        )
    return answer


def fetch_allen(params: AllenParams, session_id: int, stimulus: str, layout: Layout) -> dict:
    """Fetch one session with `npdecode.sources.allen_runner fetch`, run in the AllenSDK env."""
    args = ["fetch", str(session_id), "--root", str(layout.root.resolve())]
    args += ["--stimulus", stimulus, *policy_args(params)]
    return run_allen(params, layout.root, args)
