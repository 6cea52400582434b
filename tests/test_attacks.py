"""Nothing wrong gets through, tried as an attacker would (issue 24), on real files and real
`dvc` commands: one test per class of attack, each a case that got through before.

1. a blob in the shared remote replaced by another valid artifact (train split for test);
2. counts without their identity given to a checkpoint;
3. an NWB whose datasets claim more than the file holds;
4. a folder below `fetch.path` that links back to itself;
5. an output folder that is a symlink out of the project;
6. a bad row reported by its position after sorting; params read two ways (`010`);
and Ctrl-C during a stage: one line, nothing left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from npdecode.binning import bin_session
from npdecode.errors import CorruptError, DataError, ParamsError
from npdecode.formats.checkpoint import predict, read_checkpoint
from npdecode.formats.files import TMP_DIR
from npdecode.formats.split import load_session
from npdecode.nwb.read import read_invalid_times, read_presentations, read_spike_times, read_units
from npdecode.nwb.write import write_session_nwb
from npdecode.params import SyntheticParams, load_params
from npdecode.sources.synthetic import as_record, make_session

from .helpers import BLOCKING_SPLIT, command_env, make_project, sh

SMALL = SyntheticParams(n_units=12, n_images=4, n_repeats=6, n_blocks=2, seed=0)


def _one_error(proc: subprocess.CompletedProcess, stage: str) -> str:
    """The one `npdecode <stage>: error:` line of a failed command (and no traceback)."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if f"npdecode {stage}: error:" in ln]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def _stage(
    project: Path, module: str, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess:
    env = command_env({"PYTHONPATH": str(project / "src")})
    return subprocess.run(
        [sys.executable, "-m", f"npdecode.stages.{module}", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _session_nwb(path: Path, session_id: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_session_nwb(path, as_record(make_session(SMALL, session_id)))
    return path


# --- 1. shared storage ---------------------------------------------------------------------


def _blob(root: Path, md5: str) -> Path:
    return root / "files" / "md5" / md5[:2] / md5[2:]


def test_a_swapped_blob_in_the_remote_is_refused_by_pull_and_by_the_reader(
    project: Path, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    sh(["dvc", "remote", "modify", "--local", "proj", "url", str(remote)], project)
    sh(["dvc", "push", "-r", "proj"], project)
    lock = (project / "dvc.lock").read_text()
    dir_md5 = next(
        line.split("md5:")[1].strip()
        for block in lock.split("path: data/split/1\n")[1:2]
        for line in block.splitlines()
        if "md5:" in line
    )
    manifest = json.loads(_blob(project / ".dvc" / "cache", dir_md5).read_text())
    md5 = {entry["relpath"]: entry["md5"] for entry in manifest}
    # the group remote is writable by all: the train split's bytes put where test's belong
    test_blob = _blob(remote, md5["test.npz"])
    test_blob.chmod(0o644)
    shutil.copyfile(_blob(remote, md5["train.npz"]), test_blob)

    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    sh(["dvc", "remote", "modify", "--local", "proj", "url", str(remote)], clone)
    pulled = sh(["dvc", "pull", "-r", "proj"], clone, check=False)
    assert pulled.returncode != 0, "the committed .dvc/config must verify what it pulls"
    test = clone / "data/split/1/test.npz"
    assert not test.exists() or test.read_bytes() != (clone / "data/split/1/train.npz").read_bytes()

    # without DVC's check (a remote or shared cache that does not verify), the reader refuses
    sh(["dvc", "remote", "modify", "--local", "proj", "verify", "false"], clone)
    sh(["dvc", "pull", "-r", "proj"], clone)
    assert test.read_bytes() == (clone / "data/split/1/train.npz").read_bytes()
    proc = sh(["dvc", "repro", "--force", "--single-item", "train_logreg@1"], clone, check=False)
    line = _one_error(proc, "train")
    assert "session 1: data/split/1/test.npz holds" in line
    assert "not this session's test split" in line and "dvc repro -f split@1" in line
    with pytest.raises(DataError, match="not this session's test split"):
        load_session(clone / "data/split/1", 1, lazy=True)


# --- 2. counts without identity ------------------------------------------------------------


def test_counts_whose_identity_cannot_be_checked_are_refused(project: Path) -> None:
    data = load_session(project / "data/split/1", 1)
    ckpt = project / "models/logreg/1.pt"
    counts = data.test.X
    ok = predict(ckpt, counts, data.unit_ids, session_id=1)
    assert ok.shape == (len(counts), data.n_classes)
    with pytest.raises(DataError, match="pass unit_ids= .* and session_id="):
        predict(ckpt, counts)  # another session's counts of this width would pass
    with pytest.raises(DataError, match="pass unit_ids="):
        predict(ckpt, counts, data.unit_ids)
    with pytest.raises(DataError, match=r"sessions \[1\]: pass session_id"):
        predict(ckpt, counts, data.unit_ids, session_id=2)
    with pytest.raises(DataError, match="not whole numbers"):
        predict(ckpt, counts * 0.5 + 0.25, data.unit_ids, session_id=1)


class _Code:
    """Unpickles as a call of a function (harmless here); torch's weights-only loader refuses it."""

    def __reduce__(self) -> tuple:
        return (os.getcwd, ())


def test_a_checkpoint_holding_code_is_refused_without_the_unsafe_advice(tmp_path: Path) -> None:
    path = tmp_path / "models" / "logreg" / "1.pt"
    path.parent.mkdir(parents=True)
    torch.save({"model": "logreg", "sha256": "0" * 64, "extra": _Code()}, path)
    with pytest.raises(CorruptError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert f"{path} is damaged (not a readable torch checkpoint: " in message
    assert "getcwd" in message and "dvc repro -f train_logreg@1" in message
    assert "weights_only" not in message and "False" not in message


# --- 3. sizes a file claims ----------------------------------------------------------------


def _claim_spikes(path: Path, n: int) -> None:
    """Make `spike_times` claim `n` spikes (unwritten chunks: the file stays small)."""
    with h5py.File(path, "r+") as f:
        units = f["units"]
        attrs = dict(units["spike_times"].attrs)
        del units["spike_times"]
        forged = units.create_dataset("spike_times", shape=(n,), dtype="f8", chunks=(1 << 16,))
        forged[-1] = 1.0  # the last spike is readable and finite
        for key, value in attrs.items():
            forged.attrs[key] = value
        ends = units["spike_times_index"][()].astype(np.int64)
        ends[-1] = n
        del units["spike_times_index"]
        units.create_dataset("spike_times_index", data=ends)


def test_an_nwb_claiming_more_spikes_than_it_stores_is_refused_at_fetch(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    nwb = _session_nwb(folder / "session_1" / "session_1.nwb")
    _claim_spikes(nwb, 2**31)
    assert nwb.stat().st_size < 20 * 2**20
    project = make_project(
        tmp_path / "project", {"fetch": {"source": "local", "path": str(folder)}}
    )
    line = _one_error(_stage(project, "fetch", "1"), "fetch")
    assert f"session 1: {nwb}" in line and "claims 2,147,483,648 elements" in line
    assert not (project / "data/raw/session_1").exists()
    with pytest.raises(DataError, match="claims 2,147,483,648 elements"):
        read_spike_times(nwb, 1)  # the bin stage's reader: refused before allocating
    _claim_spikes(nwb, 2**24)  # plausible for a session, but not stored in the file
    with pytest.raises(DataError, match=r"claims 16,777,216 elements \(128 MiB\) but the file"):
        read_spike_times(nwb, 1)


# --- 4. walking a folder -------------------------------------------------------------------


def test_a_folder_linking_to_itself_is_walked_once(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    nwb = _session_nwb(folder / "deep" / "session_1" / "session_1.nwb")
    for name in ("again", "loop"):  # two links back: an unbounded walk doubles per level
        (folder / name).symlink_to(folder, target_is_directory=True)
        (folder / "deep" / name).symlink_to(folder, target_is_directory=True)
    project = make_project(
        tmp_path / "project", {"fetch": {"source": "local", "path": str(folder)}}
    )
    found = _stage(project, "fetch", "1", timeout=120)
    assert found.returncode == 0, found.stderr
    assert (project / "data/raw/session_1/session_1.nwb").read_bytes() == nwb.read_bytes()
    nwb.unlink()
    sh(["rm", "-rf", "data/raw/session_1"], project)
    line = _one_error(_stage(project, "fetch", "1", timeout=120), "fetch")
    assert "no NWB file for it below fetch.path" in line and "in every folder below it" in line


# --- 5. outputs that are symlinks ----------------------------------------------------------


def test_an_output_folder_linked_out_of_the_project_is_refused_untouched(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    outside = tmp_path / "someone-else"
    outside.mkdir()
    (outside / "notes.txt").write_text("mine\n")
    (outside / "notes.txt").chmod(0o640)
    before = {p.name: (p.read_bytes(), p.stat().st_mode) for p in outside.iterdir()}
    (project / "data/raw").mkdir(parents=True)
    (project / "data/raw/session_1").symlink_to(outside, target_is_directory=True)
    # dvc repro: refused at check_params, before DVC makes the files of fetch's persisted
    # output writable (it would, through the link)
    line = _one_error(sh(["dvc", "repro"], project, check=False), "check_params")
    assert "data/raw/session_1 is a symbolic link to the folder" in line
    assert {p.name: (p.read_bytes(), p.stat().st_mode) for p in outside.iterdir()} == before
    # the stage itself refuses too (a link made after check_params last ran)
    line = _one_error(_stage(project, "fetch", "1"), "fetch")
    assert "data/raw/session_1 is a symbolic link to the folder" in line
    assert "refusing to write through it" in line
    assert {p.name: (p.read_bytes(), p.stat().st_mode) for p in outside.iterdir()} == before
    assert (project / "data/raw/session_1").is_symlink()
    leftovers = list((project / TMP_DIR).iterdir()) if (project / TMP_DIR).exists() else []
    assert leftovers == []


# --- 6. the wrong row, values read two ways ------------------------------------------------


def test_a_nan_start_time_is_reported_for_its_own_presentation(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    assert _stage(project, "fetch", "1").returncode == 0
    nwb = project / "data/raw/session_1/session_1.nwb"
    nwb.chmod(0o644)
    with h5py.File(nwb, "r+") as f:
        g = f["intervals/natural_scenes_presentations"]
        row = 3
        pid = int(g["id"][row])
        stop = float(g["stop_time"][row])
        start = g["start_time"][()]
        start[row] = np.nan
        g["start_time"][...] = start
    line = _one_error(_stage(project, "bin", "1"), "bin")
    assert f"presentation {pid} (table row {row}) has a non-finite time" in line
    assert f"start_time=nan, stop_time={stop}" in line


def test_a_bad_spike_train_is_reported_by_its_unit_id(small_nwb: Path) -> None:
    unit_ids, spikes = read_spike_times(small_nwb, 7)
    units = read_units(small_nwb, 7)
    pres = read_presentations(small_nwb, 7, "natural_scenes")
    spikes = [s.copy() for s in spikes]
    spikes[4][[0, -1]] = spikes[4][[-1, 0]]  # unsorted
    with pytest.raises(ValueError, match=rf"^unit {unit_ids[4]} \(units row 4\): .*not sorted"):
        bin_session(spikes, units, pres, read_invalid_times(small_nwb, 7), 5)


def test_params_read_two_ways_are_refused_before_any_stage(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    params = project / "params.yaml"
    text = params.read_text()
    assert "sessions:\n- 1\n" in text
    params.write_text(text.replace("sessions:\n- 1\n", "sessions:\n- 010\n"))
    proc = sh(["dvc", "repro"], project, check=False)
    line = _one_error(proc, "check_params")
    assert "sessions[0] reads as 8 in YAML 1.1 but as 10 in YAML 1.2, which DVC uses" in line
    assert not (project / "data/raw").exists()


@pytest.mark.parametrize(
    ("text", "ours", "dvc"),
    [
        ("010", "8", "10"),
        ("yes", "True", "'yes'"),
        ("1e3", "'1e3'", "1000.0"),
        ("1:20", "80", "'1:20'"),
    ],
)
def test_each_value_yaml_reads_two_ways_is_refused_naming_the_key(
    tmp_path: Path, text: str, ours: str, dvc: str
) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(f"sessions: [1]\ntrain:\n  seed: {text}\n")
    with pytest.raises(
        ParamsError, match=rf"train\.seed reads as {ours} in YAML 1\.1 but as {dvc}"
    ):
        load_params(path)


# --- Ctrl-C --------------------------------------------------------------------------------


def test_ctrl_c_prints_one_line_and_leaves_nothing_behind(project: Path, tmp_path: Path) -> None:
    mark = tmp_path / "mark"
    env = command_env({"PYTHONPATH": str(project / "src"), "NPDECODE_TEST_MARK": str(mark)})
    proc = subprocess.Popen(
        [sys.executable, "-c", BLOCKING_SPLIT],
        cwd=project,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not mark.exists():
            assert proc.poll() is None, "the split stage ended before it wrote"
            assert time.monotonic() < deadline, "the split stage never reached its write"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = [ln for ln in err.splitlines() if "npdecode split:" in ln and "interrupted" in ln]
    assert len(lines) == 1, err
    assert list((project / TMP_DIR).iterdir()) == []
    assert json.loads(sh(["dvc", "status", "--json"], project).stdout) == {}
