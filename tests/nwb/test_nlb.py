"""npdecode.nwb.nlb: an NWB in NLB MC_RTT's layout, written by pynwb from a twin, reads as the
same session our `.mat` reader yields; through the stages it decodes; every bad input is
one line naming the session and the file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest

from npdecode.decode.crossday import group_by_subject
from npdecode.errors import DataError
from npdecode.formats.files import read_json
from npdecode.mat.read import read_mat
from npdecode.mat.write import MatSession, write_mat
from npdecode.nwb.nlb import read_nlb, write_nlb
from npdecode.params import Params, ReachParams
from npdecode.paths import Layout
from npdecode.reaching.prepare import prepare
from npdecode.sources.macaque_sessions import NLB_FILES, record_session, session
from npdecode.sources.macaque_twin import TwinSettings, generate
from npdecode.stages import fetch, reference, split

NAME = "indy_20170202_02"  # MC_RTT
TWIN = "indy_20170131_02"  # the record's last Indy session: a twin of the same array
GAPS = np.array([[40.0, 43.0], [70.0, 70.5]])  # s after the twin's start


@pytest.fixture(scope="module")
def twin() -> MatSession:
    return generate(TWIN, TwinSettings(duration_s=120.0))[0]


@pytest.fixture(scope="module")
def files(twin: MatSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("nlb")
    out = {"mat": d / f"{TWIN}.mat", "nwb": d / "whole.nwb", "gaps": d / NLB_FILES[NAME]}
    write_mat(out["mat"], twin)
    write_nlb(out["nwb"], twin, NAME)
    write_nlb(out["gaps"], twin, NAME, gaps=twin.t[0] + GAPS)
    return out


def test_reads_as_the_mat_reader_reads_the_same_twin(files: dict[str, Path]) -> None:
    m, n = read_mat(files["mat"], TWIN), read_nlb(files["nwb"], NAME)
    np.testing.assert_allclose(n.t, m.t, rtol=0, atol=1e-9)  # every 4th 1 kHz sample
    np.testing.assert_array_equal(n.cursor_pos, m.cursor_pos)
    np.testing.assert_array_equal(n.target_pos, m.target_pos)
    assert n.chan_names == m.chan_names
    np.testing.assert_array_equal(n.unit_channel, m.unit_channel)
    np.testing.assert_array_equal(n.unit_row, m.unit_row)
    assert len(n.spike_times) == len(m.spike_times) > 50
    for a, b in zip(n.spike_times, m.spike_times, strict=True):
        np.testing.assert_array_equal(a, b)
    assert n.unobserved.shape == (0, 2)


def test_gaps_are_unobserved_and_their_bins_excluded(files: dict[str, Path]) -> None:
    r = read_nlb(files["gaps"], NAME)
    np.testing.assert_allclose(r.unobserved, r.t[0] + GAPS, atol=1e-9)
    assert np.isfinite(r.cursor_pos).all()
    assert not any(((s >= r.t[0] + 40.0) & (s < r.t[0] + 43.0)).any() for s in r.spike_times)
    p = prepare(r, 0.04, 8)
    # 3 s + 0.5 s of gap, each widened by a sample and rounded out to whole bins
    assert p.report["unobserved_bins_excluded"] in range(88, 92)
    ends = r.t[0] + (np.concatenate(list(p.rows.values())) + 1) * 0.04  # window ends
    for a, b in r.unobserved:
        assert not np.any((ends > a) & (ends - 8 * 0.04 < b)), "a window overlaps a gap"
    whole = prepare(read_nlb(files["nwb"], NAME), 0.04, 8)
    assert "unobserved_bins_excluded" not in whole.report  # a continuous file: as a .mat


def test_decodes_through_the_reach_stages(files: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "dandi" / "000129" / "sub-Indy"
    folder.mkdir(parents=True)
    (folder / NLB_FILES[NAME]).write_bytes(files["gaps"].read_bytes())
    reach = ReachParams(source="local", path=str(tmp_path / "dandi"))
    params = dataclasses.replace(Params(), reach_sessions=(NAME,), reach=reach)
    root = tmp_path / "project"
    layout = Layout(root)
    for stage in (fetch, split, reference):
        stage.main(params, NAME, root)
    assert layout.reach_nwb(NAME).exists() and not layout.reach_mat(NAME).exists()
    report = read_json(layout.reach_split_report(NAME))
    assert report["monkey"] == "indy" and report["date"] == "2017-02-02"
    assert report["unobserved_bins_excluded"] > 0
    m = read_json(layout.reach_metrics("reference", NAME))
    assert m["test"]["wiener"]["r2_lo"] > 0.2, m["test"]["wiener"]  # decoded, not chance
    assert "ideal" not in m["test"]  # a real-format file: no truth


def test_the_twin_source_refuses_the_nlb_session(tmp_path: Path) -> None:
    params = dataclasses.replace(Params(), reach_sessions=(NAME,))
    with pytest.raises(DataError, match=f"session {NAME} is NLB MC_RTT's .*reach.source: local"):
        fetch.main(params, NAME, tmp_path)


def _broken(src: Path, dst: Path, edit: object) -> Path:
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        edit(f)  # type: ignore[operator]
    return dst


def _nan_cursor(f: h5py.File) -> None:
    f["processing/behavior/cursor_pos/data"][1000] = np.nan


def _late_spike(f: h5py.File) -> None:
    f["units/spike_times"][-1] = 1e6


def _unsorted(f: h5py.File) -> None:
    first = int(f["units/spike_times_index"][0])
    a = f["units/spike_times"][:first]
    f["units/spike_times"][:first] = a[::-1]


BAD = {
    "no units table": (lambda f: f.__delitem__("units"), "no units table"),
    "no cursor": (
        lambda f: f.__delitem__("processing/behavior/cursor_pos"),
        "no processing/behavior/cursor_pos",
    ),
    "test file": (
        lambda f: f.__delitem__("processing/behavior"),
        "no processing/behavior: the NLB test file",
    ),
    "nan cursor": (_nan_cursor, r"cursor_pos has NaN .* inside an observation interval"),
    "late spike": (_late_spike, "spike times outside the observed range"),
    "unsorted": (_unsorted, "unit 0 spike times are unsorted"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_naming_session_and_file(
    case: str, files: dict[str, Path], tmp_path: Path
) -> None:
    edit, what = BAD[case]
    path = _broken(files["gaps"], tmp_path / "bad.nwb", edit)
    with pytest.raises(DataError, match=what) as err:
        read_nlb(path, NAME)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"session {NAME}: {path}: "), msg


def test_other_bad_inputs(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"is session '{NAME}' .*not 'indy_20170203_01'"):
        read_nlb(files["nwb"], "indy_20170203_01")
    with pytest.raises(DataError, match="sorted units only"):
        read_nlb(files["nwb"], NAME, units="crossings")
    junk = tmp_path / "junk.nwb"
    junk.write_bytes(files["nwb"].read_bytes()[:5000])
    with pytest.raises(DataError, match=f"session {NAME}: {junk}: truncated or not an NWB"):
        read_nlb(junk, NAME)


def test_the_nlb_session_is_known_to_every_stage_but_not_the_record() -> None:
    s = session(NAME)
    assert (s.monkey, s.date.isoformat(), s.channels) == ("indy", "2017-02-02", 96)
    # the cross-day and report stages look sessions up by name: MC_RTT is Indy's last day
    assert group_by_subject([NAME, TWIN, "loco_20170210_03"]) == {
        "indy": [TWIN, NAME],
        "loco": ["loco_20170210_03"],
    }
    with pytest.raises(ValueError, match="NLB MC_RTT's, not one of the Zenodo record's 47"):
        record_session(NAME)
