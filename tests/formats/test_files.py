import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from npdecode.errors import CorruptError
from npdecode.formats.files import (
    TMP_DIR,
    atomic_path,
    read_json,
    read_npz,
    read_parquet,
    remove_stale_temporaries,
    save_npz,
    temporary_path,
    write_json,
    write_npz,
    write_parquet,
)


def test_atomic_file_is_absent_after_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_old_only_on_success(tmp_path):
    target = tmp_path / "d"
    target.mkdir()
    (target / "old").write_text("1")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("2")
        raise RuntimeError("boom")
    assert [p.name for p in tmp_path.iterdir()] == ["d"] and (target / "old").exists()
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("2")
    assert [p.name for p in target.iterdir()] == ["new"]


def test_json_converts_numpy_and_rejects_nan(tmp_path):
    write_json(tmp_path / "a.json", {"x": np.float32(0.5), "ids": np.arange(3), "n": np.int64(2)})
    assert read_json(tmp_path / "a.json") == {"x": 0.5, "ids": [0, 1, 2], "n": 2}
    with pytest.raises(ValueError):
        write_json(tmp_path / "b.json", {"x": float("nan")})
    assert not (tmp_path / "b.json").exists()


def test_npz_refuses_object_arrays(tmp_path):
    with pytest.raises(TypeError, match="pickle"):
        write_npz(tmp_path / "a.npz", x=np.array([{"a": 1}], dtype=object))
    write_npz(tmp_path / "b.npz", x=np.arange(4))
    np.testing.assert_array_equal(read_npz(tmp_path / "b.npz")["x"], np.arange(4))


# --- damaged files are refused, never read as good data ------------------------------------


def _flips(path):
    """Every copy of the file at `path` with one byte changed, as (position, bytes)."""
    good = path.read_bytes()
    for pos in range(len(good)):
        flipped = bytearray(good)
        flipped[pos] ^= 0x04
        yield pos, bytes(flipped)


def _assert_refused_or_same(path, read, same):
    """Each one-byte change of `path` makes `read` raise CorruptError naming the file and the
    fix, or leaves what it returns unchanged (a byte no reader uses, e.g. a zip timestamp)."""
    reference = read(path)
    target = path.with_name("flipped" + path.suffix)
    refused = 0
    for pos, data in _flips(path):
        target.write_bytes(data)
        try:
            value = read(target)
        except CorruptError as err:
            assert str(target) in str(err) and "dvc checkout --force" in str(err), err
            refused += 1
            continue
        assert same(value, reference), f"byte {pos} changed the data silently"
    assert refused > 0


def test_json_with_a_changed_byte_is_refused(tmp_path):
    path = tmp_path / "metrics" / "logreg" / "1.json"
    write_json(path, {"test": {"accuracy": 0.375, "n": 12}, "ids": [1, 2], "name": "logreg"})
    assert read_json(path) == {
        "test": {"accuracy": 0.375, "n": 12},
        "ids": [1, 2],
        "name": "logreg",
    }
    _assert_refused_or_same(path, read_json, lambda a, b: a == b)
    with pytest.raises(CorruptError, match=r"dvc repro -f train_logreg@1"):
        path.write_text(path.read_text().replace("0.375", "0.385"))
        read_json(path)


def test_npz_with_a_changed_byte_is_refused(tmp_path):
    path = tmp_path / "data" / "split" / "1" / "train.npz"
    path.parent.mkdir(parents=True)
    save_npz(path, X=np.arange(24, dtype=np.uint16).reshape(2, 3, 4), y=np.array([3, 1]))

    def same(a, b):
        return a.keys() == b.keys() and all(
            a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a
        )

    _assert_refused_or_same(path, lambda p: read_npz(p, ("X", "y")), same)


def test_npz_member_cut_short_by_a_changed_header_is_refused(tmp_path):
    """np.load checks the CRC only when it reads a member to its end; a shape changed in
    the header makes it stop early and return other data: read_npz reads to the end."""
    path = tmp_path / "a.npz"
    save_npz(path, X=np.arange(400_000, dtype=np.uint16).reshape(4, 100_000) % 7)
    data = path.read_bytes().replace(b"(4, 100000)", b"(2, 100000)")
    path.write_bytes(data)
    with np.load(path) as z:
        assert z["X"].shape == (2, 100_000)  # numpy alone: the wrong shape, no error
    with pytest.raises(CorruptError, match="npz"):
        read_npz(path)


def test_parquet_with_a_changed_data_byte_is_refused(tmp_path):
    path = tmp_path / "data" / "binned" / "1.units.parquet"
    table = pd.DataFrame({"unit_id": np.arange(50, dtype=np.int64), "area": ["VISp", "LGd"] * 25})
    write_parquet(table, path)
    # the column chunks (pages with their checksums) sit between the magic and the footer
    size = path.stat().st_size
    footer = int.from_bytes(path.read_bytes()[-8:-4], "little")
    good = path.read_bytes()
    target = tmp_path / "flipped.parquet"
    for pos in range(4, size - 8 - footer):
        flipped = bytearray(good)
        flipped[pos] ^= 0x04
        target.write_bytes(bytes(flipped))
        try:
            value = read_parquet(target)
        except CorruptError as err:
            assert str(target) in str(err) and "dvc checkout --force" in str(err)
            continue
        assert value.equals(table), f"byte {pos} changed the data silently"
    assert read_parquet(path).equals(table)


# --- temporaries ----------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporaries_of_a_project_live_outside_its_outputs(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    target = tmp_path / "data" / "split" / "1"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path / TMP_DIR
        assert f"~{os.getpid()}~data%split%1" in tmp.name
        tmp.mkdir()
        (tmp / "x").write_text("1")
        assert list((tmp_path / "data" / "split").iterdir()) == []
    assert (target / "x").read_text() == "1" and list((tmp_path / TMP_DIR).iterdir()) == []


def test_only_temporaries_of_dead_processes_are_removed(tmp_path):
    folder = tmp_path / TMP_DIR
    folder.mkdir()
    host = temporary_path(tmp_path / "dvc.yaml").name.split("~")[0]
    dead = folder / f"{host}~{_dead_pid()}~data%split%1"
    dead.mkdir()
    (dead / "train.npz").write_bytes(b"half")
    alive = folder / f"{host}~{os.getppid()}~data%binned%1.counts.npz"
    alive.write_bytes(b"being written")
    other_host = folder / f"elsewhere~{_dead_pid()}~metrics%logreg%1.json"
    other_host.write_bytes(b"{}")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert sorted(folder.iterdir()) == sorted([alive, other_host])
