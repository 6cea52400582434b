"""The reaching split folder (formats/reach_split.py) on a real twin session's arrays."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from npdecode.errors import DataError
from npdecode.formats.files import read_npz, save_npz
from npdecode.formats.reach_split import load_reach, write_reach_split
from npdecode.mat.read import read_mat
from npdecode.params import ReachParams
from npdecode.reaching.session import split_arrays
from npdecode.sources.macaque_twin import TwinSettings, write_twin

NAME = "indy_20160622_01"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("reach")
    write_twin(NAME, tmp / f"{NAME}.mat", tmp / "truth.npz", TwinSettings(duration_s=60.0))
    reach = ReachParams(history=5)
    r = read_mat(tmp / f"{NAME}.mat", NAME)
    arrays, rows, units, _ = split_arrays(r, NAME, reach)
    meta = {"session_id": NAME, "dataset": "macaque", "bin_width_s": 0.04, "history": 5,
            "target": "velocity", "units": "sorted"}  # fmt: skip
    write_reach_split(tmp / "split", arrays, rows, units, meta)
    return tmp / "split"


def test_round_trip_windows_and_train_statistics(folder: Path) -> None:
    d = load_reach(folder, NAME)
    assert d.counts.dtype == np.uint16 and d.counts.shape[1] == len(d.units)
    x, y = d.windows("test"), d.y("test")
    assert x.shape == (d.rows["test"].size, 5, d.n_units) and y.shape == (d.rows["test"].size, 2)
    # the last bin of a window is its row's bin, z-scored with the train statistics
    k = d.rows["test"][3]
    np.testing.assert_allclose(x[3, -1], (d.counts[k] - d.mean) / d.sd, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x[3, 0], (d.counts[k - 4] - d.mean) / d.sd, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y[3], d.vel[k].astype(np.float32))
    # splits are disjoint and every window's bins lie before its split's first test row
    assert not set(d.rows["train"]) & set(d.rows["test"])
    assert d.rows["train"].max() < d.rows["val"].min() - 4
    assert d.rows["val"].max() < d.rows["test"].min() - 4


def test_same_arrays_same_bytes(folder: Path, tmp_path: Path) -> None:
    d = load_reach(folder, NAME)
    arrays = {"counts": d.counts, "pos": d.pos, "vel": d.vel, "acc": d.acc, "time": d.time}
    meta = {k: d.meta[k] for k in ("session_id", "dataset", "bin_width_s", "history", "target",
                                   "units")}  # fmt: skip
    write_reach_split(tmp_path / "again", arrays, d.rows, d.units, meta)
    for name in ("bins.npz", "rows.npz", "norm.npz", "meta.json"):
        assert (tmp_path / "again" / name).read_bytes() == (folder / name).read_bytes()


def test_rows_of_another_split_refused(folder: Path, tmp_path: Path) -> None:
    bad = tmp_path / "split"
    shutil.copytree(folder, bad)
    rows = read_npz(bad / "rows.npz")
    rows["test"], rows["val"] = rows["val"], rows["test"]
    save_npz(bad / "rows.npz", **rows)
    with pytest.raises(DataError, match=rf"session {NAME}: .*rows.npz holds other val rows"):
        load_reach(bad, NAME)


def test_other_session_and_missing_file_refused(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a reach-split-1 folder of this session"):
        load_reach(folder, "loco_20170210_03")
    bad = tmp_path / "split"
    shutil.copytree(folder, bad)
    (bad / "norm.npz").unlink()
    with pytest.raises(DataError, match=r"norm.npz is missing"):
        load_reach(bad, NAME)
