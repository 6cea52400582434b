"""Expected failures end in one line naming the cause and what to do (issue 17, class 8).

What the user can fix (bad params, bad data, a diverging learning rate, a full disk, a
folder the stage may not write) is one line and exit status 2; anything else keeps its
traceback. The full-disk and read-only cases write through the real writers onto a real
filesystem (a tiny or read-only tmpfs in a private mount namespace).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from npdecode.cli import expected_failure, run_stage, storage_error
from npdecode.decode.session import train_model
from npdecode.errors import DataError, ParamsError, TrainingError
from npdecode.params import LSTMSection, TrainParams, params_from_dict, section_from_dict
from npdecode.stages import bin as bin_stage
from tests.models.conftest import ring_graph, separable, tiny_session
from tests.test_cli import _one_line


@pytest.mark.parametrize(
    ("sessions", "match"),
    [
        ([-1], r"sessions\[0\] is -1: a session id is a positive integer up to 1000000000000"),
        ([0], r"sessions\[0\] is 0"),
        ([1, 2**70], r"sessions\[1\] is 1180591620717411303424"),
        ([1, 1], r"lists a session twice"),
    ],
)
def test_impossible_session_ids_are_params_errors(sessions, match):
    with pytest.raises(ParamsError, match=match):
        params_from_dict({"sessions": sessions})


def test_a_negative_session_id_is_one_line_from_the_stage(tmp_path):
    (tmp_path / "params.yaml").write_text("sessions: [-1]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "npdecode.stages.fetch", "-1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert "sessions[0] is -1" in _one_line(proc)
    assert not (tmp_path / "data").exists()


def test_a_diverging_learning_rate_names_the_param():
    x, y = separable(n_classes=3)
    data = tiny_session(np.abs(x * 3).astype(np.uint16), y, 3, ring_graph(7))
    lstm = section_from_dict(LSTMSection, {"lr": 1e30, "max_epochs": 3, "hidden": 8}, "train.lstm")
    with pytest.raises(TrainingError, match=r"session 1: lstm: training diverged.*train\.lstm\.lr"):
        train_model("lstm", data, TrainParams(device="cpu", lstm=lstm))


def _run(main, capsys) -> str:
    """The stderr line of `run_stage` calling `main` (in-process, exit status 2)."""

    def entry(params, root):
        main()

    with pytest.raises(SystemExit) as stop:
        run_stage("test", entry, argv=["--params", str(PARAMS)], per_session=False)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("npdecode test: error: ")
    return err[0]


PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def test_expected_failures_are_one_line_and_bugs_keep_their_traceback(capsys):
    def diverged():
        raise TrainingError("training diverged: lower train.lstm.lr")

    assert "lower train.lstm.lr" in _run(diverged, capsys)

    def torch_full_disk():
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    assert "torch could not write a file" in _run(torch_full_disk, capsys)

    def bug():
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run_stage(
            "test", lambda params, root: bug(), argv=["--params", str(PARAMS)], per_session=False
        )
    with pytest.raises(FileNotFoundError):  # an OSError that is not the user's to fix
        run_stage(
            "test",
            lambda params, root: open("/nonexistent/x"),
            argv=["--params", str(PARAMS)],
            per_session=False,
        )
    assert expected_failure(ValueError("x"), Path(".")) is None


def test_debug_keeps_the_traceback(monkeypatch):
    monkeypatch.setenv("NPDECODE_DEBUG", "1")

    def entry(params, root):
        raise DataError("session 1: bad")

    with pytest.raises(DataError):
        run_stage("test", entry, argv=["--params", str(PARAMS)], per_session=False)


@pytest.mark.parametrize(
    ("err", "expected"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "data/binned/.1.tmp9.parquet"),
            "MiB free",
        ),
        (
            OSError("Error writing bytes to file. Detail: [errno 28] No space left on device"),
            "under",
        ),
        (PermissionError(errno.EACCES, "Permission denied", "models/lstm/.1.tmp9.pt"), "ls -ld"),
        (OSError(errno.EROFS, "Read-only file system"), "may not write there"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "x"), None),
        (OSError(errno.EIO, "Input/output error"), None),
    ],
)
def test_storage_errors_are_named_others_are_not(tmp_path, err, expected):
    message = storage_error(err, tmp_path)
    if expected is None:
        assert message is None
    else:
        assert message is not None and expected in message


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(
    sys.platform != "linux" or not _namespaces_work(),
    reason="needs unprivileged user and mount namespaces (unshare -rm) to mount a tmpfs",
)


@needs_mount
@pytest.mark.parametrize(
    ("mount_options", "expected"),
    [
        ("size=16k", "No space left on device while writing the stage's outputs"),
        ("ro", "Read-only file system: data/binned/."),
    ],
)
def test_full_disk_and_read_only_folder_are_one_line_and_leave_nothing(
    tmp_path, small_nwb, mount_options, expected
):
    raw = tmp_path / "data" / "raw" / "session_7"
    raw.mkdir(parents=True)
    shutil.copyfile(small_nwb, raw / "session_7.nwb")
    (tmp_path / "data" / "binned").mkdir()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"sessions": [7]}))
    script = (
        f"mount -t tmpfs -o {mount_options} tmpfs data/binned || exit 99; "
        f"{sys.executable} -m npdecode.stages.{bin_stage.__name__.rsplit('.', 1)[1]} 7; "
        "status=$?; ls -A data/binned >&2; exit $status"
    )
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
    )
    line = _one_line(proc)  # and `ls -A` printed nothing: no temporary left behind
    assert expected in line, line
