"""params.yaml is written the way DVC writes it back, so `dvc exp run -S` changes only values."""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import committed_text

# in a fresh process, as DVC runs it: an import elsewhere in the test session (hdmf, for
# the NWB readers) registers ruamel representers that change how DVC's writer spells null
APPLY = "import sys; from dvc.utils.hydra import apply_overrides; apply_overrides(*sys.argv[1:2], sys.argv[2:])"


@pytest.mark.parametrize(
    ("override", "changed"),
    [
        ("train.logreg.C=0.1", ["    C: 0.1 "]),
        ("clean.quality=good", ["  quality: good "]),
        ("fewshot.repeats=3", ["  repeats: 3 "]),
    ],
)
def test_set_param_changes_only_its_line(tmp_path: Path, override: str, changed: list[str]) -> None:
    """The exact code `dvc exp run -S` runs on params.yaml (DVC's hydra override writer)."""
    # the committed file: the workspace's may hold an experiment's values (dvc exp run -S)
    committed = committed_text("params.yaml")
    path = tmp_path / "params.yaml"
    path.write_text(committed)
    subprocess.run([sys.executable, "-c", APPLY, str(path), override], check=True)
    before = committed.splitlines()
    after = path.read_text().splitlines()
    diff = [
        line
        for line in difflib.unified_diff(before, after, lineterm="", n=0)
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    ]
    added = [line[1:] for line in diff if line.startswith("+")]
    assert len(diff) == 2 and len(added) == 1, diff
    assert added[0].startswith(changed[0]), added
