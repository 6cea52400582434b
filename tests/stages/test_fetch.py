"""A failed fetch leaves the session that was there (issue 17, class 7), for every source.

Each source verifies the new NWB (stimulus, labels, tables) before it replaces
`data/raw/session_<id>/`: synthetic inside its temporary folder, local and allen inside
`install_session`'s temporary folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import pytest

from npdecode.errors import DataError
from npdecode.nwb.read import metadata_tables
from npdecode.params import params_from_dict
from npdecode.paths import Layout
from npdecode.sources.install import install_session
from npdecode.stages import fetch
from tests.allen.helpers import write_nwb

SMALL = {"n_units": 12, "n_images": 4, "n_repeats": 6}
SID = 715093703


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _no_leftovers(root: Path) -> None:
    raw = root / "data" / "raw"
    assert [p.name for p in raw.glob(".*")] == []


def test_synthetic_session_lacking_the_stimulus_does_not_replace_the_old_one(tmp_path):
    layout = Layout(tmp_path)
    fetch.main(params_from_dict({"fetch": {"synthetic": SMALL}}), 1, tmp_path)
    before = _snapshot(layout.raw_dir(1))
    changed = params_from_dict(
        {"fetch": {"synthetic": {**SMALL, "seed": 3}}, "bin": {"stimulus": "gabors"}}
    )
    with pytest.raises(DataError, match=r"session 1: .* has no gabors presentations"):
        fetch.main(changed, 1, tmp_path)
    assert _snapshot(layout.raw_dir(1)) == before  # same files, same bytes
    _no_leftovers(tmp_path)


def _bad_labels(path: Path) -> Path:
    with h5py.File(path, "r+") as f:
        frames = f["intervals/natural_scenes_presentations/frame"]
        values = frames[()]
        values[2] = 2.5
        frames[...] = values
    return path


def test_local_file_with_bad_labels_is_refused_before_placing(tmp_path):
    root, layout = tmp_path / "proj", Layout(tmp_path / "proj")
    folder = tmp_path / "in"
    folder.mkdir()
    src = write_nwb(folder / f"session_{SID}.nwb", SID)
    params = params_from_dict(
        {"sessions": [SID], "fetch": {"source": "local", "path": str(folder)}}
    )
    fetch.main(params, SID, root)
    before = _snapshot(layout.raw_dir(SID))
    src.unlink()  # a new file, not the hardlinked inode
    _bad_labels(write_nwb(src, SID))
    with pytest.raises(DataError, match=r"row 2 \(presentation 2\): 2\.5"):
        fetch.main(params, SID, root)
    assert _snapshot(layout.raw_dir(SID)) == before
    _no_leftovers(root)


def test_install_verifies_what_it_placed_before_the_swap(tmp_path):
    """The allen and local sources place through `install_session`: a file that does not pass
    for the stimulus (here: one the session lacks) never replaces the folder."""
    layout = Layout(tmp_path / "proj")
    good = write_nwb(tmp_path / "good" / f"session_{SID}.nwb", SID)
    tables = metadata_tables(good, SID)
    install_session(layout, SID, good, tables, {"source": "test"}, "natural_scenes")
    before = _snapshot(layout.raw_dir(SID))
    other = shutil.copyfile(good, tmp_path / "other.nwb")
    with pytest.raises(DataError, match="has no drifting_gratings presentations"):
        install_session(layout, SID, Path(other), tables, {"source": "new"}, "drifting_gratings")
    assert _snapshot(layout.raw_dir(SID)) == before
    _no_leftovers(tmp_path / "proj")
