"""The tests pass in a user's workspace after the README's experiment (issue 18.2).

`dvc exp run -S train.logreg.C=0.1` rewrites params.yaml (values and formatting); tests
that read the project's own files must read the committed tree (or the package defaults).
`.ci/run` runs the real experiment before the whole suite; this test does the cheap part
of that on every run: DVC's own params rewrite in a clone, then the tests that read
project files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dvc.utils.hydra import apply_overrides

from tests.helpers import PROJECT, sh

# the tests that read params.yaml itself (the others build projects from the defaults)
READERS = (
    "tests/test_params.py",
    "tests/test_dvc_yaml.py::test_every_declared_params_key_exists_in_params_yaml",
    "tests/sources/test_sessions.py::test_cli_uses_the_query_written_in_params",
)


def test_project_file_tests_pass_after_the_readme_experiment_rewrote_params(tmp_path: Path):
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(PROJECT), str(clone)], tmp_path)
    params = clone / "params.yaml"
    before = params.read_text()
    apply_overrides(params, ["train.logreg.C=0.1"])  # what `dvc exp run -S` does to the file
    after = params.read_text()
    assert "C: 0.1" in after and "sessions: [1]" not in after and after != before
    env = {**os.environ, "PYTHONPATH": str(clone / "src"), "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-n", "0", "-p", "no:cacheprovider", *READERS],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
