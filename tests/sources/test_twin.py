"""The Allen twin (fetch.synthetic.preset: allen) on reduced twins: ids, anatomy, QC, layout."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pynwb
import pytest

from npdecode.analyses.protocols import default_qc
from npdecode.errors import ParamsError
from npdecode.formats.files import read_json
from npdecode.formats.truth import read_truth
from npdecode.nwb import read as nwb
from npdecode.params import SyntheticParams
from npdecode.paths import Layout
from npdecode.sources import twin, twin_model
from npdecode.sources.allen_vc import VISUAL_AREAS, allen_sessions
from tests.conftest import QUICKSTART_TWIN, SMALL_TWIN


@pytest.fixture(scope="module")
def small_twin() -> twin.TwinSession:
    return twin.make_twin(SMALL_TWIN, QUICKSTART_TWIN)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_ids_mirror_the_real_sessions_without_taking_their_ids(twin_dir: Path) -> None:
    path = twin_dir / "session_29.nwb"
    assert nwb.read_identifier(path, 29) == "29"
    description = nwb.read_description(path, 29)
    assert "twin of Allen" in description and "791319847" in description
    assert "not recorded data" in description
    record = read_json(twin_dir / "twin.json")
    assert record["twin_of"] == 791319847 and record["session_id"] == 29
    real_specimens = {s.specimen_id for s in allen_sessions()}
    specimens = {twin.TWIN_SPECIMEN_BASE + s.twin_id for s in allen_sessions()}
    assert len(specimens) == 32 and not specimens & real_specimens
    assert nwb.read_session_info(path, 29)["specimen_id"] == str(twin.TWIN_SPECIMEN_BASE + 29)


@pytest.mark.parametrize("session_id", [0, 33])
def test_an_id_outside_the_32_twins_names_the_range(session_id: int) -> None:
    with pytest.raises(ParamsError, match=rf"session {session_id}: .*ids are 1-32"):
        twin.make_twin(SMALL_TWIN, session_id)


def test_unit_plans_follow_the_csv_at_full_size() -> None:
    """Passing units per visual area = CSV count x AREA_QC_RATIO; totals as published."""
    params = SyntheticParams(preset="allen")
    for real in allen_sessions():
        mouse = twin_model.draw_mouse(params, real)
        plan = twin_model.unit_plan(real, mouse, 1.0).set_index("structure")
        assert plan["n_pass"].sum() == real.units_passing_default_qc
        assert 2000 <= mouse.n_units <= 3000
        assert plan[["n_pass", "n_fail"]].to_numpy().sum() == mouse.n_units
        for area in VISUAL_AREAS:
            want = real.area_units[area] * twin_model.AREA_QC_RATIO
            got = plan["n_pass"].get(area, 0)
            assert abs(got - want) <= 1, (real.session_id, area, got, want)
        assert set(plan.index) <= set(real.structures) | set(VISUAL_AREAS) | {"grey"}
    assert twin_model.draw_mouse(params, allen_sessions()[0]).n_units == 2073  # issue 12's figure
    # the anchor: 93 VISp units of 791319847 pass the default filters
    real = allen_sessions()[QUICKSTART_TWIN - 1]
    plan = twin_model.unit_plan(real, twin_model.draw_mouse(params, real), 1.0).set_index(
        "structure"
    )
    assert plan.loc["VISp", "n_pass"] == 93


def test_probes_channels_and_areas_of_the_written_twin(twin_dir: Path) -> None:
    real = allen_sessions()[QUICKSTART_TWIN - 1]
    path = twin_dir / "session_29.nwb"
    summary = nwb.verify_session_nwb(path, 29)
    assert len(summary.probe_ids) == real.probe_count
    assert summary.n_channels == real.channel_count
    units = nwb.read_units(path, 29)
    assert set(units["area"]) <= set(real.structures) | {"grey"}
    assert (units["area"] == "VISp").sum() > (units["area"] == "LGd").sum()  # 125 vs 17


def test_default_filters_keep_about_the_designed_units(twin_dir: Path, small_twin) -> None:
    units = nwb.read_units(twin_dir / "session_29.nwb", 29)
    designed = int(small_twin.units["passes_qc"].sum())  # round(555 x 0.02) = 11
    kept = int(default_qc(units).sum())
    assert designed == 11 and abs(kept - designed) <= 1
    assert len(units) == small_twin.mouse.n_units


def test_units_failing_qc_are_more_often_noise(small_twin) -> None:
    """Failing units respond less often and more weakly (their defects are real)."""
    params = SyntheticParams(preset="allen", unit_scale=0.3, n_images=10, n_repeats=12)
    t = twin.make_twin(params, 1)
    passes = t.units["passes_qc"].to_numpy()
    responsive = t.model.responsive
    assert responsive[passes].mean() > responsive[~passes].mean() + 0.15
    keep = t.model.keep
    assert keep[passes].min() > 0.89 and (keep[~passes] < 0.9).mean() > 0.4


def test_spikes_sorted_inside_the_session_and_as_counted(twin_dir: Path, small_twin) -> None:
    ids, spikes = nwb.read_spike_times(twin_dir / "session_29.nwb", 29)
    np.testing.assert_array_equal(ids, small_twin.units["id"])
    assert [len(s) for s in spikes] == small_twin.n_spikes.tolist()
    for s in spikes:
        assert (np.diff(s) >= 0).all() and (s >= 0).all() and (s < twin_model.SESSION_S).all()


def test_presentation_counts_follow_the_truth(twin_dir: Path, small_twin) -> None:
    """Mean spikes per presentation and unit, from the file, match gain x drift x rates."""
    from npdecode.analyses.protocols import presentation_counts

    ids, spikes = nwb.read_spike_times(twin_dir / "session_29.nwb", 29)
    pres = nwb.read_presentations(twin_dir / "session_29.nwb", 29, "natural_scenes")
    counts = presentation_counts(
        spikes, pres["start_time"].to_numpy(), pres["stop_time"].to_numpy()
    )
    truth = read_truth(twin_dir / "truth.npz")
    per_image = truth.rates_hz.sum(axis=1, dtype=np.float64) * truth.step_s  # (C, U)
    gains = np.load(twin_dir / "truth.npz")["presentation_gain"]
    expected = gains[:, None] * truth.unit_gain * per_image[small_twin.seen]
    a, b = small_twin.noise_interval  # the probe noise is not in the truth
    clean = (pres["stop_time"].to_numpy() < a) | (pres["start_time"].to_numpy() > b)
    got, want = counts[clean].sum(), expected[clean].sum()
    assert abs(got - want) < 4 * np.sqrt(want)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, twin_dir: Path) -> None:
    twin.fetch_twin(SMALL_TWIN, QUICKSTART_TWIN, Layout(tmp_path / "a"))
    again = Layout(tmp_path / "a").raw_dir(29)
    for name in ("session_29.nwb", "truth.npz", "twin.json", "units.csv"):
        assert _md5(again / name) == _md5(twin_dir / name), name
    other = twin.make_twin(SyntheticParams(**{**SMALL_TWIN.__dict__, "seed": 1}), 29)
    assert not np.array_equal(other.counts, twin.make_twin(SMALL_TWIN, 29).counts)


def test_pynwb_reads_the_allen_layout(twin_dir: Path, small_twin) -> None:
    with pynwb.NWBHDF5IO(str(twin_dir / "session_29.nwb"), "r", load_namespaces=True) as io:
        f = io.read()
        assert f.identifier == "29" and "791319847" in f.session_description
        assert type(f.subject).__name__ == "EcephysSpecimen"
        assert sorted(f.electrode_groups) == sorted(small_twin.probes["name"])
        assert type(f.electrode_groups["probeA"]).__name__ == "EcephysElectrodeGroup"
        units = f.units.to_dataframe()
        for col in ("peak_channel_id", "quality", "isi_violations", "amplitude_cutoff"):
            assert col in units.columns
        amplitudes = units["spike_amplitudes"].iloc[0]
        assert len(amplitudes) == len(units["spike_times"].iloc[0])
        assert (np.asarray(amplitudes) > 0).all()
        assert set(units["peak_channel_id"]) <= set(f.electrodes.to_dataframe().index)
        assert len(f.intervals["natural_scenes_presentations"]) == 11 * 12


def test_unused_params_are_refused_with_preset_allen() -> None:
    with pytest.raises(
        ParamsError, match=r"fetch.synthetic.n_units has no effect with preset allen"
    ):
        SyntheticParams(preset="allen", n_units=2000)
    with pytest.raises(ParamsError, match=r"unit_scale shrinks a twin of preset allen"):
        SyntheticParams(unit_scale=0.5)
