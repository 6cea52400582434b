"""The split folder read lazily: rows straight from the npz file, equal to reading it whole."""

import zipfile

import numpy as np
import pandas as pd
import pytest

from npdecode.errors import CorruptError, DataError
from npdecode.formats.split import SPLITS, load_session
from npdecode.params import params_from_dict
from tests.helpers import write_split_folder


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    rng = np.random.default_rng(0)
    n_classes, reps, n_bins, n_units = 4, 10, 3, 7
    frames = np.tile(np.arange(-1, n_classes - 1), reps)
    n = len(frames)
    counts = rng.poisson(2.0, (n, n_bins, n_units)).astype(np.uint16)
    pres = pd.DataFrame(
        {"presentation_id": np.arange(n), "frame": frames.astype(float), "start_time": np.arange(n)}
    )
    units = pd.DataFrame({"unit_id": np.arange(n_units)})
    params = params_from_dict({"sessions": [3], "split": {"graph": {"k": 2}}})
    out = tmp_path_factory.mktemp("split") / "3"
    write_split_folder(out, 3, counts, pres, units, params, bin_width_s=0.08)
    return out


def test_lazy_rows_equal_the_eager_arrays(split_dir):
    eager, lazy = load_session(split_dir, 3), load_session(split_dir, 3, lazy=True)
    rng = np.random.default_rng(1)
    for name in SPLITS:
        e, z = getattr(eager, name), getattr(lazy, name)
        assert isinstance(z.X, np.memmap) and not isinstance(e.X, np.memmap)
        np.testing.assert_array_equal(z.y, e.y)
        # unsorted, repeated, consecutive and negative indices, in the order asked
        idx = np.concatenate([rng.permutation(len(e))[:5], [0, 1, 2, 2, len(e) - 1, -1]])
        np.testing.assert_array_equal(z.rows(idx), e.X[idx])
        np.testing.assert_array_equal(z.subset(idx).X, e.X[idx])
        assert not isinstance(z.subset(idx).X, np.memmap)  # in memory
        np.testing.assert_array_equal(np.asarray(z.X), e.X)
        assert z.rows(np.array([], dtype=int)).shape == (0, *e.X.shape[1:])
        with pytest.raises(IndexError, match="out of range"):
            z.rows(np.array([len(e)]))
    np.testing.assert_array_equal(lazy.mean, eager.mean)


def test_a_flipped_byte_in_the_counts_is_caught(split_dir, tmp_path):
    broken = tmp_path / "3"
    broken.mkdir()
    for f in split_dir.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    path = broken / "train.npz"
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("X.npy")
    raw = bytearray(path.read_bytes())
    raw[info.header_offset + 200] ^= 0xFF  # inside X's data
    path.write_bytes(bytes(raw))
    # the same error as the eager reader (files.read_npz): the file, its damage and the fix
    fix = r"train.npz is damaged \(npz: .*dvc checkout --force .*train.npz.*dvc repro -f"
    with pytest.raises(CorruptError, match=fix):
        load_session(broken, 3, lazy=True)
    with pytest.raises(CorruptError, match=fix):
        load_session(broken, 3)


def test_a_member_of_the_wrong_size_or_a_missing_member_is_caught(split_dir, tmp_path):
    eager = load_session(split_dir, 3)
    for case in ("short", "missing"):
        folder = tmp_path / case
        folder.mkdir()
        for f in split_dir.iterdir():
            (folder / f.name).write_bytes(f.read_bytes())
        t = eager.test
        members = {"X": t.X[:-1] if case == "short" else t.X, "y": t.y}
        if case == "short":  # a valid zip whose X holds one presentation fewer than y
            members["presentation_id"] = t.presentation_id
        with zipfile.ZipFile(folder / "test.npz", "w") as zf:
            for name, arr in members.items():
                with zf.open(f"{name}.npy", "w") as fh:
                    np.lib.format.write_array(fh, np.ascontiguousarray(arr))
        if case == "short":  # CRCs are right: the split's own check says what is wrong
            with pytest.raises(DataError, match="test"):
                load_session(folder, 3, lazy=True)
        else:
            with pytest.raises(CorruptError, match=r"test.npz is damaged .*presentation_id"):
                load_session(folder, 3, lazy=True)


def test_a_compressed_member_is_read_whole(split_dir, tmp_path):
    folder = tmp_path / "3"
    folder.mkdir()
    for f in split_dir.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    eager = load_session(split_dir, 3)
    np.savez_compressed(
        folder / "val.npz", X=eager.val.X, y=eager.val.y, presentation_id=eager.val.presentation_id
    )
    lazy = load_session(folder, 3, lazy=True)
    assert lazy.val.stored is None and not isinstance(lazy.val.X, np.memmap)
    np.testing.assert_array_equal(lazy.val.rows(np.array([2, 0])), eager.val.X[[2, 0]])
