import numpy as np
import pytest

from npdecode.formats.files import atomic_path, read_json, read_npz, write_json, write_npz


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
