"""The readers refuse what would silently corrupt labels or units (issue 17, classes 1 and 8).

Every case is a real NWB file from the synthetic generator, changed with h5py the way a
broken export or a hand edit would change it; the same check runs at fetch
(`verify_session_nwb`, every source) and at bin (`read_presentations`, `read_spike_times`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from npdecode.errors import DataError
from npdecode.nwb import read as nwb
from npdecode.params import params_from_dict
from npdecode.paths import Layout
from npdecode.stages import bin as bin_stage

PRES = "intervals/natural_scenes_presentations"


def _copy(small_nwb: Path, tmp_path: Path) -> Path:
    path = tmp_path / "session_7.nwb"
    shutil.copyfile(small_nwb, path)
    return path


def _replace(path: Path, key: str, data: np.ndarray) -> None:
    with h5py.File(path, "r+") as f:
        attrs = dict(f[key].attrs)
        del f[key]
        f[key] = data
        f[key].attrs.update(attrs)


def _frames(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f[f"{PRES}/frame"][()]


def _both_readers_refuse(path: Path, match: str) -> None:
    with pytest.raises(DataError, match=match):
        nwb.verify_session_nwb(path, 7)
    with pytest.raises(DataError, match=match):
        nwb.read_presentations(path, 7, "natural_scenes")


def test_the_generator_records_its_image_count(small_nwb):
    with h5py.File(small_nwb, "r") as f:
        assert f[PRES].attrs[nwb.N_IMAGES_ATTR] == 10
        assert nwb.images_shown(f[PRES], "natural_scenes") == 10
    # the recorded count is the images actually shown: frames 0..9 (the blank is -1)
    pres = nwb.read_presentations(small_nwb, 7, "natural_scenes")
    assert sorted(set(pres["frame"].astype(int)) - {-1}) == list(range(10))


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (6.9, "6.9"),  # would be truncated into image 6
        (10.0, "10.0"),  # image 10 of a 10-image stimulus: a new class
        (-2.0, "-2.0"),
        (np.inf, "inf"),
    ],
)
def test_a_frame_that_is_not_an_image_id_is_refused_naming_rows(small_nwb, tmp_path, value, why):
    path = _copy(small_nwb, tmp_path)
    frames = _frames(path)
    frames[[3, 17]] = value
    _replace(path, f"{PRES}/frame", frames)
    match = (
        rf"session 7: .*session_7\.nwb: .*natural_scenes_presentations.* column 'frame': 2 of \d+ rows "
        rf"are not image ids \(integers -1 for the blank, 0\.\.9\); first: "
        rf"row 3 \(presentation 3\): {why}"
    )
    _both_readers_refuse(path, match)


def test_allen_files_are_checked_against_118_images(small_nwb, tmp_path):
    path = _copy(small_nwb, tmp_path)
    with h5py.File(path, "r+") as f:
        del f[PRES].attrs[nwb.N_IMAGES_ATTR]  # as in a real Allen file
    frames = _frames(path)
    frames[0] = 117.0  # Allen's last image: fine
    _replace(path, f"{PRES}/frame", frames)
    assert nwb.read_presentations(path, 7, "natural_scenes")["frame"].iloc[0] == 117.0
    frames[1] = 118.0  # a 120th class
    _replace(path, f"{PRES}/frame", frames)
    _both_readers_refuse(path, r"0\.\.117\); first: row 1 \(presentation 1\): 118\.0")


def test_frames_stored_as_text_parse_and_null_means_no_frame(small_nwb, tmp_path):
    path = _copy(small_nwb, tmp_path)
    text = [str(int(v)) for v in _frames(path)]
    text[0], text[1] = "null", "3.0"
    _replace(path, f"{PRES}/frame", np.array(text, dtype=h5py.string_dtype()))
    nwb.verify_session_nwb(path, 7)
    frames = nwb.read_presentations(path, 7, "natural_scenes")["frame"]
    assert np.isnan(frames.iloc[0]) and frames.iloc[1] == 3.0
    text[2] = "abc"
    _replace(path, f"{PRES}/frame", np.array(text, dtype=h5py.string_dtype()))
    _both_readers_refuse(path, r"first: row 2 \(presentation 2\): 'abc'")


def test_a_frame_column_without_any_value_is_refused(small_nwb, tmp_path):
    path = _copy(small_nwb, tmp_path)
    _replace(path, f"{PRES}/frame", np.full(_frames(path).shape, np.nan))
    _both_readers_refuse(path, r"column 'frame' has no value in any of its \d+ rows")


def test_duplicate_presentation_ids_are_refused(small_nwb, tmp_path):
    path = _copy(small_nwb, tmp_path)
    with h5py.File(path, "r") as f:
        ids = f[f"{PRES}/id"][()]
    ids[5] = ids[4]
    _replace(path, f"{PRES}/id", ids)
    _both_readers_refuse(path, r"natural_scenes_presentations table repeats ids \[4\]")


def test_duplicate_unit_ids_are_refused(small_nwb, tmp_path):
    path = _copy(small_nwb, tmp_path)
    with h5py.File(path, "r") as f:
        ids = f["units/id"][()]
    ids[2] = ids[1]
    _replace(path, "units/id", ids)
    match = rf"session 7: .*: the units table repeats ids \[{ids[1]}\]"
    with pytest.raises(DataError, match=match):
        nwb.verify_session_nwb(path, 7)
    with pytest.raises(DataError, match=match):
        nwb.read_spike_times(path, 7)


def test_a_broken_spike_index_is_named_not_taken_for_unsorted_spikes(small_nwb, tmp_path):
    path = _copy(small_nwb, tmp_path)
    with h5py.File(path, "r") as f:
        ends = f["units/spike_times_index"][()]
    ends[3], ends[4] = ends[4], ends[3]  # two offsets swapped: the last one still matches
    _replace(path, "units/spike_times_index", ends)
    match = r"spike_times_index goes back at unit row 4 .*the index that splits spike_times"
    with pytest.raises(DataError, match=match):
        nwb.verify_session_nwb(path, 7)
    with pytest.raises(DataError, match=match):
        nwb.read_spike_times(path, 7)


def test_bin_stage_refuses_bad_labels_and_writes_nothing(small_nwb, tmp_path):
    layout = Layout(tmp_path)
    layout.raw_dir(7).mkdir(parents=True)
    path = layout.nwb(7)
    shutil.copyfile(small_nwb, path)
    frames = _frames(path)
    frames[8] = 4.5
    _replace(path, f"{PRES}/frame", frames)
    params = params_from_dict({"sessions": [7]})
    with pytest.raises(DataError, match=r"session 7: .*row 8 \(presentation 8\): 4\.5"):
        bin_stage.main(params, 7, root=tmp_path)
    assert not (tmp_path / "data" / "binned").exists()
