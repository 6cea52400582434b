"""fetch.source: allen, end to end: the main env runs `npdecode.sources.allen_runner` in the AllenSDK env.

The real AllenSDK `EcephysProjectCache` runs against a pre-filled cache folder (the CSVs
of allen-nwb-schema.md and synthetic NWB files in the Allen layout) and a fake Allen API
on 127.0.0.1 (its WellKnownFile query and file download). Needs the AllenSDK environment:

    NPDECODE_ALLEN_PYTHON=.venv-allen/bin/python python -m pytest -m allen tests/allen
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from npdecode.errors import DataError
from npdecode.formats.files import read_json
from npdecode.params import Params, load_params, params_from_dict
from npdecode.paths import Layout
from npdecode.sources import sessions as sessions_cli
from npdecode.stages import bin as bin_stage
from npdecode.stages import fetch
from tests.allen.helpers import (
    BO,
    FC,
    FakeAllen,
    FakeAllenServer,
    copy_tree,
    drop_near_end,
    truncate,
    write_allen_cache,
    write_nwb,
)
from tests.helpers import make_project, sh

pytestmark = pytest.mark.allen

REPO = Path(__file__).resolve().parents[2]
SID, SID2, FC_ID, OTHER = 715093703, 719161530, 766640955, 732592105
OFFLINE = "http://127.0.0.1:9"  # nothing listens there: any network use fails at once


@pytest.fixture(scope="session")
def allen_python() -> str:
    given = os.environ.get("NPDECODE_ALLEN_PYTHON", str(REPO / ".venv-allen" / "bin" / "python"))
    # absolute, because each test's project root is a temp folder; abspath, not resolve(),
    # which would follow the venv's symlink to the base interpreter
    python = os.path.abspath(given)
    if not Path(python).exists():
        pytest.fail(
            f"no AllenSDK environment at {python}: create it with scripts/setup_allen_env.sh "
            "or set NPDECODE_ALLEN_PYTHON"
        )
    return python


@pytest.fixture(scope="session")
def cache_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sessions SID, SID2 (brain_observatory_1.1) and FC_ID; an NWB only for SID."""
    folder = tmp_path_factory.mktemp("allen_cache")
    return write_allen_cache(folder, {SID: BO, SID2: BO, FC_ID: FC}, with_nwb={SID})


@pytest.fixture(scope="session")
def other_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_nwb(tmp_path_factory.mktemp("other") / "o.nwb", OTHER).read_bytes()


@pytest.fixture
def project(tmp_path: Path, cache_fixture: Path) -> Layout:
    """A project root whose data/raw/ is a fresh copy of the cache (AllenSDK may delete files)."""
    copy_tree(cache_fixture, tmp_path / "data" / "raw")
    return Layout(tmp_path)


def allen_params(python: str, api_url: str, *session_ids: int, max_tries: int = 3) -> Params:
    return params_from_dict(
        {
            "sessions": list(session_ids),
            "fetch": {
                "source": "allen",
                "allen": {
                    "python": python,
                    "api_url": api_url,
                    "timeout_s": 5.0,
                    "max_tries": max_tries,
                    "backoff_s": 0.0,
                },
            },
        }
    )


def test_cached_session_is_used_offline_and_binned(allen_python: str, project: Layout) -> None:
    inode = project.nwb(SID).stat().st_ino
    params = allen_params(allen_python, OFFLINE, SID)
    fetch.main(params, SID, project.root)
    assert project.nwb(SID).stat().st_ino == inode  # kept, not downloaded or copied
    units = pd.read_csv(project.raw_dir(SID) / "units.csv")
    assert len(units) == 30  # AllenSDK's default unit filters are off
    assert {"id", "ecephys_channel_id", "ecephys_structure_acronym", "quality"} <= set(units)
    assert set(units["ecephys_session_id"]) == {SID}
    sessions = pd.read_csv(project.raw_dir(SID) / "sessions.csv")
    assert sessions["id"].tolist() == [SID] and sessions["session_type"].tolist() == [BO]
    probes = pd.read_csv(project.raw_dir(SID) / "probes.csv")
    assert len(probes) == 6 and set(probes["ecephys_session_id"]) == {SID}
    channels = pd.read_csv(project.raw_dir(SID) / "channels.csv")
    assert set(channels["ecephys_session_id"]) == {SID}
    record = read_json(project.fetch_record(SID))
    assert record["origin"] == "AllenSDK cache" and record["n_units"] == 30
    bin_stage.main(params, SID, project.root)
    assert len(pd.read_parquet(project.binned_units(SID))) == 30


def test_download_that_fails_twice_then_succeeds(
    allen_python: str, project: Layout, cache_fixture: Path
) -> None:
    served = (cache_fixture / f"session_{SID}" / f"session_{SID}.nwb").read_bytes()
    shutil.rmtree(project.raw_dir(SID))
    fake = FakeAllen(files={SID: served}, actions=["503", drop_near_end(served)])
    with FakeAllenServer(fake):
        fetch.main(allen_params(allen_python, fake.url, SID), SID, project.root)
    assert project.nwb(SID).read_bytes() == served
    ranges = fake.file_requests()
    assert ranges[:2] == [None, None] and ranges[2] is not None  # the 3rd try resumed
    assert list(project.partial_dir.iterdir()) == []
    assert read_json(project.fetch_record(SID))["origin"].endswith(
        f"/api/v2/well_known_file_download/{SID}"
    )


def test_interrupted_fetch_is_resumed(
    allen_python: str, project: Layout, cache_fixture: Path
) -> None:
    served = (cache_fixture / f"session_{SID}" / f"session_{SID}.nwb").read_bytes()
    shutil.rmtree(project.raw_dir(SID))
    fake = FakeAllen(files={SID: served}, actions=[drop_near_end(served)])
    with FakeAllenServer(fake):
        params = allen_params(allen_python, fake.url, SID, max_tries=1)
        with pytest.raises(DataError, match=rf"session {SID}: .*kept in .*resumes from there"):
            fetch.main(params, SID, project.root)
        assert not project.raw_dir(SID).exists()
        kept = (project.partial_dir / f"session_{SID}.nwb.part").stat().st_size
        fetch.main(params, SID, project.root)
    assert fake.file_requests()[-1] == f"bytes={kept}-"
    assert project.nwb(SID).read_bytes() == served


def test_unknown_session_fails_before_any_download(allen_python: str, project: Layout) -> None:
    fake = FakeAllen()
    with FakeAllenServer(fake):
        with pytest.raises(DataError, match=r"session 123 is not in the Allen session table"):
            fetch.main(allen_params(allen_python, fake.url, 123), 123, project.root)
    assert fake.requests == []


def test_session_without_natural_scenes_fails_before_download(
    allen_python: str, project: Layout
) -> None:
    fake = FakeAllen()
    with FakeAllenServer(fake):
        with pytest.raises(
            DataError, match=rf"session {FC_ID} is a {FC} session: .*natural_scenes"
        ):
            fetch.main(allen_params(allen_python, fake.url, FC_ID), FC_ID, project.root)
    assert fake.requests == []


def test_mixed_up_download_is_refused(
    allen_python: str, project: Layout, other_bytes: bytes
) -> None:
    fake = FakeAllen(files={SID2: other_bytes})  # the warehouse serves another session
    with FakeAllenServer(fake):
        with pytest.raises(DataError, match=rf"session {SID2}: .*holds session '{OTHER}'"):
            fetch.main(allen_params(allen_python, fake.url, SID2), SID2, project.root)
    assert not project.raw_dir(SID2).exists()
    assert list(project.partial_dir.iterdir()) == []


def test_corrupt_cached_file_is_not_deleted_offline(allen_python: str, project: Layout) -> None:
    """AllenSDK's cache deletes a cached NWB it cannot read and cannot re-download; we don't."""
    size = truncate(project.nwb(SID)).stat().st_size
    with pytest.raises(
        DataError, match=rf"session {SID}: the Allen API .* failed 2 times.*left in"
    ):
        fetch.main(allen_params(allen_python, OFFLINE, SID, max_tries=2), SID, project.root)
    assert project.nwb(SID).stat().st_size == size


def test_sessions_command_expands_from_allensdk_table(
    allen_python: str, project: Layout, tmp_path: Path
) -> None:
    text = (REPO / "params.yaml").read_text().replace("sessions:\n- 1\n", f"sessions: {BO}\n")
    text = text.replace("source: synthetic", "source: allen")
    text = text.replace("python: .venv-allen/bin/python", f"python: {allen_python}")
    text = text.replace("api_url: http://api.brain-map.org", f"api_url: {OFFLINE}")
    path = project.root / "params.yaml"
    path.write_text(text)
    assert sessions_cli.main(["--params", str(path), "--root", str(project.root), "--write"]) == 0
    assert load_params(path).sessions == (SID, SID2)


def test_dvc_repro_as_a_user_runs_it(
    allen_python: str, tmp_path: Path, cache_fixture: Path
) -> None:
    """`dvc repro bin@<id>` with fetch.source: allen, offline on a filled cache; reruns keep it."""
    allen = {"python": allen_python, "api_url": OFFLINE, "max_tries": 1}
    repo = make_project(
        tmp_path / "repo", {"sessions": [SID], "fetch": {"source": "allen", "allen": allen}}
    )
    copy_tree(cache_fixture, repo / "data" / "raw")
    sh(["dvc", "repro", f"bin@{SID}"], repo)
    layout = Layout(repo)
    assert len(pd.read_parquet(layout.binned_units(SID))) == 30
    untracked = sh(["git", "status", "--porcelain", "--untracked-files=all"], repo).stdout
    assert "data/raw/manifest.json" not in untracked and "data/raw/units.csv" not in untracked
    # download knobs are not DVC params: changing them leaves fetch up to date
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["fetch"]["allen"]["timeout_s"] = 30.0
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    assert f"fetch@{SID}" not in sh(["dvc", "status", f"fetch@{SID}"], repo).stdout
    # a code change reruns fetch; the persisted NWB is verified and kept (offline: no download)
    with open(repo / "src" / "npdecode" / "sources" / "allen_runner.py", "a") as fh:
        fh.write("\n# changed\n")
    out = sh(["dvc", "repro", f"fetch@{SID}"], repo).stdout
    assert f"Running stage 'fetch@{SID}'" in out
    assert read_json(layout.fetch_record(SID))["origin"] == "AllenSDK cache"
