"""Session lists: `sessions` validation, `python -m npdecode.sources.sessions`, the allen-env guard."""

from __future__ import annotations

import tomllib
from pathlib import Path

import h5py
import pytest
import yaml

from npdecode.cli import run_stage
from npdecode.errors import ParamsError
from npdecode.params import load_params, params_from_dict
from npdecode.sources import sessions
from npdecode.stages import fetch
from tests.allen.helpers import write_nwb
from tests.helpers import committed_text

REPO = Path(__file__).resolve().parents[2]
BO_ID, FC_ID = 715093703, 766640955


@pytest.fixture(scope="module")
def local_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One brain_observatory_1.1 and one functional_connectivity session (DANDI names)."""
    folder = tmp_path_factory.mktemp("dandi")
    write_nwb(folder / "sub-1" / f"sub-1_ses-{BO_ID}.nwb", BO_ID)
    fc = write_nwb(folder / "sub-2" / f"sub-2_ses-{FC_ID}.nwb", FC_ID)
    with h5py.File(fc, "r+") as f:
        del f["general/stimulus"]
        f["general/stimulus"] = "functional_connectivity"
    return folder


def project_params(tmp_path: Path, sessions_value: object, folder: Path) -> Path:
    """The repository's params.yaml, switched to `local`, with `sessions` set."""
    text = committed_text("params.yaml")  # the workspace's may hold an experiment's values
    raw = yaml.safe_load(text)
    edits = {
        "\nsessions:\n- 1\n": f"\nsessions: {sessions_value}\n",
        "\n  source: synthetic": "\n  source: local",
        # fetch.path (reach.path has its own comment)
        "\n  path:                    # local: folder below which session_": (
            f"\n  path: {folder}   # local: folder below which session_"
        ),
    }
    for old, new in edits.items():
        assert text.count(old) == 1, f"params.yaml no longer has exactly one {old!r}"
        text = text.replace(old, new)
    assert raw["sessions"] == [1]
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("value", ["all", "brain_observatory_1.1"])
def test_a_query_string_in_sessions_points_at_the_command(value: str) -> None:
    with pytest.raises(
        ParamsError, match=r"sessions is the string .*python -m npdecode.sources.sessions"
    ):
        params_from_dict({"sessions": value})


def test_stage_cli_reports_it_in_one_line(
    tmp_path: Path, local_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = project_params(tmp_path, "all", local_folder)
    with pytest.raises(SystemExit) as stop:
        run_stage("fetch", fetch.main, argv=[str(BO_ID), "--params", str(params)])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("npdecode fetch: error: ") and "npdecode.sources.sessions --write" in err
    assert len(err.splitlines()) == 1


def test_write_keeps_the_rest_of_params_yaml(tmp_path: Path, local_folder: Path) -> None:
    path = project_params(tmp_path, "[1]", local_folder)
    before = path.read_text()
    sessions.write_sessions(path, [BO_ID, FC_ID], "all")
    once = path.read_text()
    sessions.write_sessions(path, [BO_ID], "brain_observatory_1.1")  # our comment is replaced
    after = path.read_text()
    assert load_params(path).sessions == (BO_ID,)
    assert after.count(sessions.COMMENT) == 1 and once.count(sessions.COMMENT) == 1
    strip = [ln for ln in before.splitlines() if not ln.startswith("sessions:")]
    kept = [ln for ln in after.splitlines() if not ln.startswith(("sessions:", sessions.COMMENT))]
    assert kept == strip  # every other line, comments included, unchanged


def test_write_replaces_a_block_list(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("# top\nsessions:\n- 1\n- 2\nfetch:\n  source: local\n  path: x\n")
    sessions.write_sessions(path, [3, 4], "all")
    assert yaml.safe_load(path.read_text()) == {
        "sessions": [3, 4],
        "fetch": {"source": "local", "path": "x"},
    }
    assert path.read_text().startswith("# top\n")


def test_many_ids_wrap_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("sessions: [1]\n")
    ids = list(range(715093703, 715093703 + 32 * 1000, 1000))
    sessions.write_sessions(path, ids, "brain_observatory_1.1")
    assert max(len(ln) for ln in path.read_text().splitlines()) <= 100
    assert yaml.safe_load(path.read_text())["sessions"] == ids


def test_cli_local_lists_sessions_showing_the_stimulus(
    tmp_path: Path, local_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project_params(tmp_path, "[1]", local_folder)
    assert sessions.main(["--params", str(path), "--type", "all"]) == 0
    assert capsys.readouterr().out.split() == [
        str(BO_ID),
        "brain_observatory_1.1",
        str(FC_ID),
        "functional_connectivity",
    ]
    # without a type: the sessions that show bin.stimulus (natural_scenes)
    assert sessions.main(["--params", str(path), "--write"]) == 0
    assert load_params(path).sessions == (BO_ID,)


def test_cli_uses_the_query_written_in_params(tmp_path: Path, local_folder: Path) -> None:
    path = project_params(tmp_path, "functional_connectivity", local_folder)
    assert sessions.main(["--params", str(path), "--write"]) == 0
    assert load_params(path).sessions == (FC_ID,)
    assert "from 'functional_connectivity'" in path.read_text()


def test_cli_no_match_is_an_error(
    tmp_path: Path, local_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project_params(tmp_path, "[1]", local_folder)
    assert sessions.main(["--params", str(path), "--type", "brain_observatory_9"]) == 2
    assert "no local session matches" in capsys.readouterr().err


def test_allen_without_its_environment_says_how_to_make_one(tmp_path: Path) -> None:
    params = params_from_dict(
        {
            "sessions": [BO_ID],
            "fetch": {"source": "allen", "allen": {"python": "no-such-venv/bin/python"}},
        }
    )
    with pytest.raises(ParamsError, match=r"fetch.allen.python: .*setup_allen_env.sh"):
        fetch.main(params, BO_ID, tmp_path)
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*.nwb"))


def test_setup_script_pins_match_the_allen_extra() -> None:
    script = (REPO / "scripts" / "setup_allen_env.sh").read_text()
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = extras["optional-dependencies"]["allen"]
    assert pins
    for pin in pins:
        assert f'"{pin}"' in script, pin


def test_synthetic_allen_preset_lists_and_writes_the_32_twins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "params.yaml"
    text = committed_text("params.yaml")
    assert text.count("\n    preset: none") == 1
    path.write_text(text.replace("\n    preset: none", "\n    preset: allen"))
    assert sessions.main(["--params", str(path), "--write"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 32 and out[0].split("\t") == [
        "1",
        "brain_observatory_1.1",
        "twin of 715093703",
    ]
    assert load_params(path).sessions == tuple(range(1, 33))
    assert sessions.main(["--params", str(path), "--type", "functional_connectivity"]) == 2


def test_synthetic_none_preset_has_no_list(tmp_path: Path, capsys) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(committed_text("params.yaml"))
    assert sessions.main(["--params", str(path)]) == 2
    assert "fetch.synthetic.preset: allen" in capsys.readouterr().err
