"""npdecode.mat: the reaching `.mat` written by mat.write is read back exactly, and every bad
input of the issue gives one line naming the session, the file and what is wrong."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from npdecode.errors import DataError
from npdecode.mat.read import kinematics, read_mat
from npdecode.mat.write import USERBLOCK_BYTES, MatSession, write_mat

NAME = "indy_20160622_01"


def _session(rng: np.random.Generator, n: int = 500) -> MatSession:
    t = 5.0 + np.arange(n) * 0.004
    end = t[-1] + 0.004
    trains = [[np.sort(rng.uniform(t[0], end, 40)) for _ in range(3)],
              [np.sort(rng.uniform(t[0], end, 15)), None, np.sort(rng.uniform(t[0], end, 9))],
              [None, None, np.array([t[0], t[-1]])]]  # fmt: skip
    return MatSession(t, rng.normal(size=(n, 2)), rng.normal(size=(n, 3)),
                      rng.normal(size=(n, 2)), ["M1 001", "M1 002", "S1 003"], trains)  # fmt: skip


@pytest.fixture
def mat(tmp_path: Path) -> tuple[Path, MatSession]:
    s = _session(np.random.default_rng(1))
    path = tmp_path / f"{NAME}.mat"
    write_mat(path, s)
    return path, s


def test_round_trip_is_exact(mat: tuple[Path, MatSession]) -> None:
    path, s = mat
    r = read_mat(path, NAME)
    np.testing.assert_array_equal(r.t, s.t)
    np.testing.assert_array_equal(r.cursor_pos, s.cursor_pos)
    np.testing.assert_array_equal(r.target_pos, s.target_pos)
    assert r.chan_names == list(s.chan_names)
    # sorted units in (row, channel) order; placeholders skipped
    assert list(zip(r.unit_row, r.unit_channel, strict=True)) == [(1, 0), (1, 2), (2, 2)]
    np.testing.assert_array_equal(r.spike_times[0], s.spikes[1][0])
    np.testing.assert_array_equal(r.spike_times[2], s.spikes[2][2])


def test_crossings_merge_every_row_of_a_channel(mat: tuple[Path, MatSession]) -> None:
    path, s = mat
    r = read_mat(path, NAME, units="crossings")
    assert list(r.unit_channel) == [0, 1, 2]
    want = np.sort(np.concatenate([s.spikes[0][2], s.spikes[1][2], s.spikes[2][2]]))
    np.testing.assert_array_equal(r.spike_times[2], want)


def test_layout_is_matlab_v73(mat: tuple[Path, MatSession]) -> None:
    path, s = mat
    head = path.read_bytes()[:USERBLOCK_BYTES]
    assert head.startswith(b"MATLAB 7.3 MAT-file") and head[124:128] == b"\x00\x02IM"
    with h5py.File(path, "r") as f:
        assert f["t"].shape == (1, 500) and f["cursor_pos"].shape == (2, 500)
        assert f["spikes"].shape == (3, 3) and f["chan_names"].shape == (1, 3)
        empty = f[f["spikes"][1, 1]]
        assert empty.attrs["MATLAB_empty"] == 1 and empty[()].tolist() == [0, 0]
        assert f[f["wf"][1, 0]].shape == (48, 15)


def test_same_session_gives_same_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.mat", tmp_path / "b.mat"
    write_mat(a, _session(np.random.default_rng(3)))
    write_mat(b, _session(np.random.default_rng(3)))
    assert a.read_bytes() == b.read_bytes()


def test_kinematics_are_the_gradient_over_t() -> None:
    t = np.arange(100) * 0.004
    pos = np.column_stack([3 * t**2, -2 * t])
    vel, acc = kinematics(t, pos)
    np.testing.assert_allclose(vel[1:-1], np.column_stack([6 * t, -2 * np.ones_like(t)])[1:-1])
    np.testing.assert_allclose(acc[2:-2, 0], 6.0)


def _edit(path: Path, fn) -> None:  # type: ignore[no-untyped-def]
    with h5py.File(path, "r+") as f:
        fn(f)


def _replace(f: h5py.File, name: str, data: np.ndarray) -> None:
    del f[name]
    f.create_dataset(name, data=data)


def _ref_data(f: h5py.File, row: int, col: int, data: np.ndarray) -> None:
    ds = f[f["spikes"][row, col]]
    ds[...] = data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.__delitem__("cursor_pos"), r"missing array\(s\) cursor_pos"),
        (lambda f: _replace(f, "t", (np.arange(500) * 0.005)[None]), r"t is not a 4 ms grid"),
        (lambda f: f["cursor_pos"].__setitem__((0, 7), np.nan), r"cursor_pos has NaN .*sample 7"),
        (lambda f: f[f["chan_names"][0, 1]].__setitem__(..., np.array([[88]] * 6)),
         r"channel name 1 'XXXXXX' does not parse"),
        (lambda f: _ref_data(f, 2, 2, np.array([[5.0 - 1, 6.0]])), r"spikes\[2, 2\] has spike times outside t"),
        (lambda f: _ref_data(f, 2, 2, np.array([[6.0, 5.5]])), r"spikes\[2, 2\] .*unsorted or duplicated"),
        (lambda f: _ref_data(f, 2, 2, np.array([[5.5, 5.5]])), r"spikes\[2, 2\] spike times are unsorted or duplicated"),
    ],
)  # fmt: skip
def test_bad_input_names_session_file_and_fault(
    mat: tuple[Path, MatSession],
    edit,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    path, _ = mat
    _edit(path, edit)
    with pytest.raises(DataError, match=rf"^session {NAME}: .*{path.name}: {message}") as err:
        read_mat(path, NAME)
    assert "\n" not in str(err.value)


def test_truncated_file(mat: tuple[Path, MatSession]) -> None:
    path, _ = mat
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=rf"session {NAME}: .*truncated or not a MATLAB v7.3"):
        read_mat(path, NAME)


def test_claimed_size_is_checked_before_allocating(tmp_path: Path) -> None:
    path = tmp_path / "huge.mat"
    write_mat(path, _session(np.random.default_rng(2)))
    with h5py.File(path, "r+") as f:
        del f["cursor_pos"]
        f.create_dataset("cursor_pos", shape=(2, 2**31), dtype=np.float64)  # no storage
    with pytest.raises(DataError, match=r"cursor_pos claims 34359738368 bytes in a \d+-byte file"):
        read_mat(path, NAME)


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    s = _session(np.random.default_rng(4))
    bad = MatSession(s.t, s.cursor_pos, s.finger_pos, s.target_pos, s.chan_names, [[None]])
    with pytest.raises(ValueError, match="entries"):
        write_mat(tmp_path / "x.mat", bad)
    assert not (tmp_path / "x.mat").exists()
