import numpy as np
import pandas as pd
import pytest

from npdecode.binning import bin_session, bin_spikes, invalid_intervals_for, invalid_spikes
from npdecode.errors import DataError
from npdecode.formats.binned import read_counts, read_meta
from npdecode.nwb import read as nwb
from npdecode.params import params_from_dict
from npdecode.paths import Layout
from npdecode.stages import bin as bin_stage

INVALID = pd.DataFrame(
    {
        "start_time": [1.0, 5.0, 9.0],
        "stop_time": [2.0, 6.0, 10.0],
        "tags": [
            ["EcephysProbe", "101", "probeB"],
            ["EcephysSession", "7", "all_probes"],
            ["EcephysProbe", "999", "probeZ"],
        ],
    }
)


def test_invalid_intervals_scoped_by_probe_name_id_or_all():
    np.testing.assert_array_equal(
        invalid_intervals_for(INVALID, "probeB", 101), [[1.0, 2.0], [5.0, 6.0]]
    )
    np.testing.assert_array_equal(invalid_intervals_for(INVALID, "probeA", 100), [[5.0, 6.0]])
    # matched by id alone too
    np.testing.assert_array_equal(
        invalid_intervals_for(INVALID, "other", 999), [[5.0, 6.0], [9.0, 10.0]]
    )


def test_invalid_spikes_are_scoped_and_counted_per_probe():
    units = pd.DataFrame({"probe": ["probeA", "probeB"], "probe_id": [100, 101]})
    spikes = [np.array([1.5, 5.5, 7.0]), np.array([1.0, 1.5, 2.0, 3.0, 6.0])]
    inside, removed = invalid_spikes(spikes, units, INVALID)
    np.testing.assert_array_equal(inside[0], [5.5])  # probe A keeps its spike in B's interval
    np.testing.assert_array_equal(inside[1], [1.0, 1.5, 2.0, 6.0])  # closed intervals
    assert removed == {"probeA": 1, "probeB": 4}


def test_unit_without_a_probe_still_loses_its_spikes_in_session_wide_invalid_times():
    units = pd.DataFrame({"probe": ["probeA", None], "probe_id": [100, np.nan]})
    spikes = [np.array([5.5]), np.array([1.5, 5.5, 9.5])]
    inside, removed = invalid_spikes(spikes, units, INVALID)
    np.testing.assert_array_equal(inside[1], [5.5])  # only the all_probes interval applies
    assert removed == {"probeA": 1, "unknown probe": 1}


def test_unsorted_spikes_are_an_error_naming_session_and_file(tmp_path, small_nwb, monkeypatch):
    layout = Layout(tmp_path)
    layout.raw_dir(7).mkdir(parents=True)
    layout.nwb(7).write_bytes(small_nwb.read_bytes())
    ids, spikes = nwb.read_spike_times(layout.nwb(7), 7)
    spikes[0] = spikes[0][::-1].copy()  # a corrupt train, as a broken export would give
    monkeypatch.setattr(nwb, "read_spike_times", lambda path, sid: (ids, spikes))
    params = params_from_dict({"sessions": [7]})
    with pytest.raises(DataError, match=r"session 7: .*session_7\.nwb: .*sorted"):
        bin_stage.main(params, 7, root=tmp_path)
    assert not layout.binned(7).exists()


def test_invalid_spikes_are_subtracted_from_their_bins():
    units = pd.DataFrame({"probe": ["probeB"], "probe_id": [101], "unit_id": [9]})
    spikes = [np.array([0.5, 1.2, 1.7, 2.2, 3.5])]
    pres = pd.DataFrame(
        {
            "presentation_id": [0, 1, 2],
            "start_time": [0.0, 1.0, 3.0],
            "stop_time": [1.0, 2.5, 4.0],
            "frame": [1.0, 2.0, 3.0],
        }
    )
    counts, pres_out, report = bin_session(spikes, units, pres, INVALID, 3)
    # presentation 1 = [1.0, 2.5) in bins of 0.5 s: 1.2 and 1.7 are invalid (probe B, [1, 2]); 2.2 stays
    np.testing.assert_array_equal(counts[:, :, 0], [[0, 1, 0], [0, 0, 1], [0, 1, 0]])
    assert pres_out["overlaps_invalid"].tolist() == [False, True, False]
    assert report["invalid_spikes_removed"] == {"probeB": 2, "total": 2}
    assert report["n_spikes"] == 3 and report["n_spikes_binned"] == 3


def test_bin_session_on_synthetic(small_nwb, small_session):
    _, spikes = nwb.read_spike_times(small_nwb, 7)
    units = nwb.read_units(small_nwb, 7)
    pres = nwb.read_presentations(small_nwb, 7, "natural_scenes")
    invalid = nwb.read_invalid_times(small_nwb, 7)
    counts, pres_out, report = bin_session(spikes, units, pres, invalid, 5)
    assert counts.shape == (len(pres), 5, len(units))
    assert report["n_spikes_binned"] == counts.sum()
    # the noisy probe interval's spikes were removed, and they were many (noise bursts)
    probe = small_session.invalid_times["tags"][1][2]
    assert report["invalid_spikes_removed"][probe] > 0
    assert report["invalid_spikes_removed"]["total"] == sum(
        v for k, v in report["invalid_spikes_removed"].items() if k != "total"
    )
    flagged = pres_out.loc[pres_out["overlaps_invalid"], "start_time"].to_numpy()
    assert len(flagged) == report["presentations_overlapping_invalid"] > 0
    # counts outside the flagged presentations equal plain binning of the raw spikes
    ok = ~pres_out["overlaps_invalid"].to_numpy()
    raw = bin_spikes(spikes, pres_out["start_time"].to_numpy(), pres_out["stop_time"].to_numpy(), 5)
    np.testing.assert_array_equal(counts[ok], raw[ok])


def test_stage_writes_tables(tmp_path, small_nwb):
    layout = Layout(tmp_path)
    layout.raw_dir(7).mkdir(parents=True)
    layout.nwb(7).write_bytes(small_nwb.read_bytes())
    params = params_from_dict({"sessions": [7], "bin": {"timesteps_per_frame": 4}})
    bin_stage.main(params, 7, root=tmp_path)
    binned = read_counts(layout.binned(7), 7)
    units = read_meta(layout.binned_units(7))
    pres = read_meta(layout.binned_presentations(7))
    assert binned.counts.shape == (len(pres), 4, len(units)) and binned.counts.dtype.kind == "u"
    np.testing.assert_array_equal(binned.unit_id, units["unit_id"])
    np.testing.assert_array_equal(binned.presentation_id, pres["presentation_id"])
    assert {"probe", "area", "probe_vertical_position", "quality"} <= set(units.columns)
    # the counts are those of the kernel on the NWB's spikes
    _, spikes = nwb.read_spike_times(layout.nwb(7), 7)
    invalid = nwb.read_invalid_times(layout.nwb(7), 7)
    shown = nwb.read_presentations(layout.nwb(7), 7, "natural_scenes")
    expected, _, _ = bin_session(spikes, units, shown, invalid, 4)
    np.testing.assert_array_equal(binned.counts, expected)


def test_wrong_stimulus_is_a_clear_error(tmp_path, small_nwb):
    layout = Layout(tmp_path)
    layout.raw_dir(7).mkdir(parents=True)
    layout.nwb(7).write_bytes(small_nwb.read_bytes())
    params = params_from_dict({"sessions": [7], "bin": {"stimulus": "gabors"}})
    with pytest.raises(ValueError, match="session 7: .* has no gabors presentations"):
        bin_stage.main(params, 7, root=tmp_path)
    assert not layout.binned(7).exists()
