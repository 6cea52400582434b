"""Artifacts you can trust, in a real `dvc repro`-ed project: a damaged artifact is refused
with the fix in the message, and a stage killed mid-write leaves nothing in any output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from npdecode.formats.files import TMP_DIR

from .helpers import BLOCKING_SPLIT, command_env, sh


def _flip_in_place(path: Path, offset: int) -> None:
    """Change one byte of `path`, on a new inode (DVC may hardlink it to its cache)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.unlink()
    path.write_bytes(bytes(data))


def test_damaged_binned_counts_are_refused_naming_the_file_and_the_fix(project: Path) -> None:
    counts = project / "data/binned/1.counts.npz"
    _flip_in_place(counts, counts.stat().st_size // 2)  # inside the counts array
    proc = sh(["dvc", "repro", "--force", "--single-item", "clean@1"], project, check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if "npdecode clean: error" in line]
    assert len(errors) == 1, proc.stderr
    assert "data/binned/1.counts.npz is damaged" in errors[0]
    assert "CRC" in errors[0]
    assert "`dvc checkout --force data/binned/1.counts.npz`" in errors[0]
    assert "`dvc repro -f bin@1`" in errors[0]
    # the advice works: the cached copy is intact, and clean runs on it
    sh(["dvc", "checkout", "--force", "data/binned/1.counts.npz"], project)
    sh(["dvc", "repro", "--force", "--single-item", "clean@1"], project)
    assert json.loads(sh(["dvc", "status", "--json"], project).stdout) == {}


@pytest.mark.parametrize(
    ("rel", "stage"),
    [
        ("data/binned/1.units.parquet", "split@1"),  # parquet page checksum
        ("data/binned/1.report.json", "split@1"),  # JSON sha256
        ("data/split/1/meta.json", "train_logreg@1"),
        ("metrics/reference/1.json", "train_logreg@1"),
    ],
)
def test_each_kind_of_damaged_input_stops_the_stage_reading_it(
    project: Path, rel: str, stage: str
) -> None:
    path = project / rel
    text = path.read_bytes()
    if rel.endswith(".json"):  # a digit of a value
        offset = next(i for i, b in enumerate(text) if chr(b).isdigit())
    else:  # the middle of the pages, between the magic bytes and the footer
        footer = int.from_bytes(text[-8:-4], "little")
        offset = (4 + len(text) - 8 - footer) // 2
    _flip_in_place(path, offset)
    proc = sh(["dvc", "repro", "--force", "--single-item", stage], project, check=False)
    assert proc.returncode != 0
    assert f"{rel} is damaged" in proc.stderr and "dvc checkout --force" in proc.stderr


def _temporaries(project: Path) -> list[Path]:
    """Temporaries anywhere in the project's outputs (any name a writer gives one)."""
    roots = [project / d for d in ("data", "metrics", "models", "predictions", "scores")]
    return [
        p
        for root in roots
        if root.exists()
        for p in root.rglob("*")
        if "~" in p.name or ".tmp" in p.name
    ]


def test_killed_stage_leaves_nothing_in_outputs_and_the_next_run_cleans_up(
    project: Path, tmp_path: Path
) -> None:
    mark = tmp_path / "mark"
    env = command_env({"PYTHONPATH": str(project / "src"), "NPDECODE_TEST_MARK": str(mark)})
    proc = subprocess.Popen([sys.executable, "-c", BLOCKING_SPLIT], cwd=project, env=env)
    try:
        deadline = time.monotonic() + 300
        while not mark.exists():
            assert proc.poll() is None, "the split stage ended before it wrote"
            assert time.monotonic() < deadline, "the split stage never reached its write"
            time.sleep(0.2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the stage's own process, mid-write
        proc.wait()
    written = Path(mark.read_text())
    assert (project / TMP_DIR) in written.parents  # built outside every output
    assert _temporaries(project) == []
    assert sorted(p.name for p in (project / "data/split").iterdir()) == [
        ".gitignore",
        "1",
        "1.report.json",
    ]
    leftovers = list((project / TMP_DIR).iterdir())
    assert leftovers and all(f"~{proc.pid}~" in p.name for p in leftovers)
    # DVC sees nothing changed: the old split folder is intact
    assert json.loads(sh(["dvc", "status", "--json"], project).stdout) == {}
    # the next stage run removes the dead run's temporary (and the split is byte-identical)
    sh(["dvc", "repro", "--force", "--single-item", "split@1"], project)
    assert list((project / TMP_DIR).iterdir()) == []
    assert json.loads(sh(["dvc", "status", "--json"], project).stdout) == {}
    assert sh(["git", "status", "--porcelain"], project).stdout == ""
