import shutil

import h5py
import numpy as np
import pynwb
import pytest

from npdecode.errors import DataError
from npdecode.nwb import read as nwb
from npdecode.nwb.write import write_session_nwb


def test_pynwb_reads_back_allen_layout(small_nwb, small_session):
    with pynwb.NWBHDF5IO(str(small_nwb), "r", load_namespaces=True) as io:
        f = io.read()
        assert f.identifier == str(small_session.session_id)
        assert type(f.subject).__name__ == "EcephysSpecimen"
        assert f.subject.subject_id == str(small_session.specimen_id)
        assert sorted(f.electrode_groups) == sorted(small_session.probes["name"])
        group = f.electrode_groups["probeA"]
        assert (
            type(group).__name__ == "EcephysElectrodeGroup"
            and group.probe_id == small_session.probes["id"][0]
        )
        assert (
            type(group.device).__name__ == "EcephysProbe" and group.device.sampling_rate == 30000.0
        )
        units = f.units.to_dataframe()
        assert list(units.index) == small_session.units["id"].tolist()
        for col in (
            "peak_channel_id",
            "quality",
            "isi_violations",
            "amplitude_cutoff",
            "presence_ratio",
            "firing_rate",
        ):
            assert col in units.columns
        for got, want in zip(units["spike_times"], small_session.spike_times, strict=True):
            np.testing.assert_array_equal(got, want)
        electrodes = f.electrodes.to_dataframe()
        assert set(units["peak_channel_id"]) <= set(electrodes.index)
        assert {"location", "probe_id", "probe_vertical_position", "valid_data"} <= set(
            electrodes.columns
        )
        ns = f.intervals["natural_scenes_presentations"].to_dataframe()
        assert len(ns) == len(small_session.presentations)
        assert (ns["frame"] == -1).sum() == (small_session.presentations["frame"] == -1).sum()
        assert [
            list(t) for t in f.invalid_times.to_dataframe()["tags"]
        ] == small_session.invalid_times["tags"].tolist()


def test_file_is_patched_for_allensdk(small_nwb):
    with h5py.File(small_nwb, "r") as f:
        assert f[nwb.ELECTRODES].attrs["neurodata_type"] == "DynamicTable"
        assert f.attrs["nwb_version"] == "2.7.0"


def test_h5py_readers_match_the_session(small_nwb, small_session):
    ids, spikes = nwb.read_spike_times(small_nwb, 7)
    np.testing.assert_array_equal(ids, small_session.units["id"])
    assert all(np.array_equal(a, b) for a, b in zip(spikes, small_session.spike_times, strict=True))
    units = nwb.read_units(small_nwb, 7)
    assert list(units["unit_id"]) == list(ids)
    assert set(units["probe"]) <= set(small_session.probes["name"])
    assert units["area"].notna().all() and units["probe_vertical_position"].notna().all()
    pres = nwb.read_presentations(small_nwb, 7, "natural_scenes")
    np.testing.assert_allclose(pres["start_time"], small_session.presentations["start_time"])
    np.testing.assert_array_equal(pres["frame"], small_session.presentations["frame"])
    inv = nwb.read_invalid_times(small_nwb, 7)
    assert inv["tags"].tolist() == small_session.invalid_times["tags"].tolist()
    info = nwb.read_session_info(small_nwb, 7)
    assert info == {
        "identifier": "7",
        "specimen_id": str(small_session.specimen_id),
        "session_type": "brain_observatory_1.1",
    }


def test_missing_file_names_session_and_path(tmp_path):
    with pytest.raises(DataError, match=r"session 9: NWB file .*session_9.nwb does not exist"):
        nwb.read_spike_times(tmp_path / "session_9.nwb", 9)


def test_truncated_file_is_a_clear_error(small_nwb, tmp_path):
    bad = tmp_path / "session_7.nwb"
    bad.write_bytes(small_nwb.read_bytes()[:100_000])
    with pytest.raises(DataError, match=r"session 7: .* not a readable HDF5/NWB file"):
        nwb.read_units(bad, 7)


def test_missing_stimulus_lists_what_the_file_has(small_nwb, tmp_path):
    copy = tmp_path / "s.nwb"
    shutil.copy(small_nwb, copy)
    with h5py.File(copy, "r+") as f:
        del f["intervals/natural_scenes_presentations"]
    with pytest.raises(
        DataError, match=r"no natural_scenes presentations \(stimuli in this file: .*spontaneous"
    ):
        nwb.read_presentations(copy, 7, "natural_scenes")


def test_failed_write_leaves_nothing(tmp_path, small_session):
    from npdecode.sources.synthetic import as_record

    record = as_record(small_session)
    broken = record.__class__(**{**record.__dict__, "spike_times": record.spike_times[:-1]})
    with pytest.raises(ValueError):
        write_session_nwb(tmp_path / "x.nwb", broken)
    assert list(tmp_path.iterdir()) == []
