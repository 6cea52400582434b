"""fetch.source: local — find, verify, link or copy NWB files already on disk; then bin them."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from npdecode.errors import DataError, ParamsError
from npdecode.formats.files import read_json
from npdecode.nwb import read as nwb_read
from npdecode.params import Params, params_from_dict
from npdecode.paths import Layout
from npdecode.sources import local
from npdecode.stages import bin as bin_stage
from npdecode.stages import fetch
from tests.allen.helpers import drop_stimulus, truncate, write_nwb
from tests.helpers import make_project, sh

REPO = Path(__file__).resolve().parents[2]
SID = 715093703
OTHER = 719161530


@pytest.fixture(scope="module")
def nwb_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_nwb(tmp_path_factory.mktemp("nwb") / f"session_{SID}.nwb", SID)


@pytest.fixture(scope="module")
def other_nwb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_nwb(tmp_path_factory.mktemp("nwb") / f"session_{OTHER}.nwb", OTHER)


def local_params(folder: Path, *sessions: int) -> Params:
    return params_from_dict(
        {"sessions": list(sessions or [SID]), "fetch": {"source": "local", "path": str(folder)}}
    )


def place(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def leftovers(root: Path) -> list[str]:
    """Temporary siblings a failed fetch must not leave behind."""
    raw = root / "data" / "raw"
    return sorted(p.name for p in raw.glob(".*")) if raw.exists() else []


def test_allensdk_cache_layout_is_hardlinked_and_binned(tmp_path: Path, nwb_file: Path) -> None:
    src = place(nwb_file, tmp_path / "cache" / f"session_{SID}" / f"session_{SID}.nwb")
    root = tmp_path / "proj"
    params = local_params(tmp_path / "cache")
    fetch.main(params, SID, root)
    layout = Layout(root)
    assert layout.nwb(SID).stat().st_ino == src.stat().st_ino  # same filesystem: hardlink
    tables = {n: pd.read_csv(layout.raw_dir(SID) / f"{n}.csv") for n in fetch_tables()}
    assert tables["sessions"]["id"].tolist() == [SID]
    assert tables["sessions"]["session_type"].tolist() == ["brain_observatory_1.1"]
    assert len(tables["units"]) == 30 and "ecephys_channel_id" in tables["units"]
    assert set(tables["probes"]["ecephys_session_id"]) == {SID}
    assert {"ecephys_probe_id", "ecephys_structure_acronym"} <= set(tables["channels"])
    record = read_json(layout.fetch_record(SID))
    assert record["source"] == "local" and record["session_id"] == SID
    assert record["origin"] == f"session_{SID}/session_{SID}.nwb"
    assert record["n_units"] == 30
    assert not layout.truth(SID).exists()
    # the bin stage reads it exactly as it reads a synthetic session
    bin_stage.main(params, SID, root)
    units = pd.read_parquet(layout.binned_units(SID))
    assert len(units) == 30
    assert len(pd.read_parquet(layout.binned_presentations(SID))) == 132


def fetch_tables() -> tuple[str, ...]:
    return ("sessions", "probes", "channels", "units")


def test_dandi_layout_skips_probe_files(tmp_path: Path, nwb_file: Path) -> None:
    dandi = tmp_path / "000021" / "sub-699733573"
    place(nwb_file, dandi / f"sub-699733573_ses-{SID}.nwb")
    (dandi / f"sub-699733573_ses-{SID}_probe-810755797_ecephys.nwb").write_bytes(b"not hdf5")
    found = local.find_session_file(tmp_path / "000021", SID)
    assert found.name == f"sub-699733573_ses-{SID}.nwb"
    fetch.main(local_params(tmp_path / "000021"), SID, tmp_path / "proj")
    assert Layout(tmp_path / "proj").nwb(SID).exists()


@pytest.mark.parametrize(
    ("name", "sid"),
    [
        ("session_715093703.nwb", 715093703),
        ("sub-699733573_ses-715093703.nwb", 715093703),
        ("ses-715093703.nwb", 715093703),
        ("sub-1_ses-715093703_behavior+ecephys.nwb", 715093703),
        ("sub-1_ses-715093703_probe-810755797_ecephys.nwb", None),
        ("probe_810755797_lfp.nwb", None),
        ("session_715093703.nwb.part", None),
        ("notes.nwb", None),
    ],
)
def test_session_id_from_name(name: str, sid: int | None) -> None:
    assert local.session_id_from_name(name) == sid


def test_mixed_up_file_is_refused(tmp_path: Path, other_nwb: Path) -> None:
    place(other_nwb, tmp_path / "in" / f"session_{SID}.nwb")  # named SID, holds OTHER
    with pytest.raises(DataError, match=rf"session {SID}: .*identifier is '{OTHER}'"):
        fetch.main(local_params(tmp_path / "in"), SID, tmp_path / "proj")
    assert not Layout(tmp_path / "proj").raw_dir(SID).exists()


def test_truncated_file_is_refused_and_nothing_is_placed(tmp_path: Path, nwb_file: Path) -> None:
    truncate(place(nwb_file, tmp_path / "in" / f"session_{SID}.nwb"))
    root = tmp_path / "proj"
    with pytest.raises(DataError, match=rf"session {SID}: .*session_{SID}.nwb.*truncated"):
        fetch.main(local_params(tmp_path / "in"), SID, root)
    assert not Layout(root).raw_dir(SID).exists()
    assert leftovers(root) == []


def test_file_without_natural_scenes_is_refused(tmp_path: Path, nwb_file: Path) -> None:
    drop_stimulus(place(nwb_file, tmp_path / "in" / f"session_{SID}.nwb"))
    with pytest.raises(DataError, match=rf"session {SID}: .*no natural_scenes presentations"):
        fetch.main(local_params(tmp_path / "in"), SID, tmp_path / "proj")
    assert not Layout(tmp_path / "proj").raw_dir(SID).exists()


def test_missing_session_names_the_patterns(tmp_path: Path, nwb_file: Path) -> None:
    place(nwb_file, tmp_path / "in" / f"session_{SID}.nwb")
    with pytest.raises(DataError, match=rf"session {OTHER}: no NWB file.*ses-{OTHER}"):
        fetch.main(local_params(tmp_path / "in", OTHER), OTHER, tmp_path / "proj")


def test_two_different_files_for_one_session_are_ambiguous(tmp_path: Path, nwb_file: Path) -> None:
    place(nwb_file, tmp_path / "in" / f"session_{SID}.nwb")
    place(nwb_file, tmp_path / "in" / "sub-1" / f"sub-1_ses-{SID}.nwb")
    with pytest.raises(DataError, match="several files"):
        local.find_session_file(tmp_path / "in", SID)


def test_other_filesystem_is_copied(
    tmp_path: Path, nwb_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = place(nwb_file, tmp_path / "in" / f"session_{SID}.nwb")

    def no_link(a: object, b: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    fetch.main(local_params(tmp_path / "in"), SID, tmp_path / "proj")
    dst = Layout(tmp_path / "proj").nwb(SID)
    assert dst.stat().st_ino != src.stat().st_ino
    assert dst.read_bytes() == src.read_bytes()


def test_synthetic_leftovers_are_replaced(tmp_path: Path, nwb_file: Path) -> None:
    """A folder from `fetch.source: synthetic` (truth.npz!) must not survive a real fetch."""
    root = tmp_path / "proj"
    layout = Layout(root)
    place(nwb_file, layout.nwb(SID))
    layout.truth(SID).write_bytes(b"synthetic ground truth")
    place(nwb_file, tmp_path / "in" / f"session_{SID}.nwb")
    fetch.main(local_params(tmp_path / "in"), SID, root)
    assert not layout.truth(SID).exists()
    assert sorted(p.name for p in layout.raw_dir(SID).iterdir()) == [
        "channels.csv",
        "fetch.json",
        "probes.csv",
        "session_715093703.nwb",
        "sessions.csv",
        "units.csv",
    ]


def test_failed_refetch_keeps_the_previous_session(tmp_path: Path, nwb_file: Path) -> None:
    root = tmp_path / "proj"
    src = place(nwb_file, tmp_path / "in" / f"session_{SID}.nwb")
    fetch.main(local_params(tmp_path / "in"), SID, root)
    before = sorted(p.name for p in Layout(root).raw_dir(SID).iterdir())
    src.unlink()
    truncate(place(nwb_file, src))  # a new file, not the hardlinked inode
    with pytest.raises(DataError, match="truncated"):
        fetch.main(local_params(tmp_path / "in"), SID, root)
    assert sorted(p.name for p in Layout(root).raw_dir(SID).iterdir()) == before
    nwb_read.verify_session_nwb(Layout(root).nwb(SID), SID)
    assert leftovers(root) == []


def test_local_needs_a_path() -> None:
    with pytest.raises(ParamsError, match="fetch.path"):
        params_from_dict({"fetch": {"source": "local"}})


def test_dvc_repro_local(tmp_path: Path, nwb_file: Path) -> None:
    """`dvc repro bin@<id>` on a local folder; a download knob is not a DVC param of fetch."""
    place(nwb_file, tmp_path / "dandi" / "sub-1" / f"sub-1_ses-{SID}.nwb")
    fetch_params = {"source": "local", "path": str(tmp_path / "dandi")}
    repo = make_project(tmp_path / "repo", {"sessions": [SID], "fetch": fetch_params})
    sh(["dvc", "repro", f"bin@{SID}"], repo)
    assert len(pd.read_parquet(Layout(repo).binned_units(SID))) == 30
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["fetch"]["allen"]["max_tries"] = 9
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    assert f"fetch@{SID}" not in sh(["dvc", "status", f"fetch@{SID}"], repo).stdout


def test_dvc_yaml_fetch_stage_lists_what_the_stage_reads() -> None:
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["fetch"]["do"]
    assert tuple(stage["params"]) == fetch.PARAMS
    assert not set(fetch.UNTRACKED_PARAMS) & set(stage["params"])
    modules = ("stages/fetch", "sources/synthetic", "sources/local", "sources/install")
    modules += ("sources/allen", "sources/allen_runner", "sources/download")
    assert {f"src/npdecode/{m}.py" for m in modules} <= set(stage["deps"])
    assert "src/npdecode/nwb" in stage["deps"]
    assert stage["outs"][0] == {"data/raw/session_${item}": {"persist": True}}
    # what fetch got is a plain git file, not a DVC metric (`dvc exp show` lists scores only)
    assert stage["outs"][1] == {"data/raw/session_${item}.report.json": {"cache": False}}
    assert "metrics" not in stage
