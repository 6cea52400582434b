import numpy as np
import pytest

from npdecode.params import SyntheticParams
from npdecode.sources.synthetic import PRESENTATION_S, make_session
from tests.conftest import SMALL


def test_schedule_has_every_image_and_blank_repeated(small_session):
    pres = small_session.presentations
    counts = pres["frame"].value_counts()
    assert sorted(counts.index) == [-1.0] + [float(i) for i in range(SMALL.n_images)]
    assert (counts == SMALL.n_repeats).all()
    assert np.allclose(pres["stop_time"] - pres["start_time"], PRESENTATION_S)
    assert (np.diff(pres["start_time"]) > 0).all()


def test_blocks_are_back_to_back_with_gaps_between(small_session):
    pres = small_session.presentations
    assert pres["stimulus_block"].nunique() == SMALL.n_blocks
    for _, block in pres.groupby("stimulus_block"):
        assert np.allclose(block["start_time"].to_numpy()[1:], block["stop_time"].to_numpy()[:-1])
    gaps = pres["start_time"].to_numpy()[1:] - pres["stop_time"].to_numpy()[:-1]
    assert (gaps > 60).sum() == SMALL.n_blocks - 1


def test_spikes_sorted_and_inside_session(small_session):
    end = small_session.spontaneous["stop_time"].max()
    assert len(small_session.spike_times) == len(small_session.units)
    for s in small_session.spike_times:
        assert (np.diff(s) >= 0).all()
        assert len(s) == 0 or (s[0] >= 0 and s[-1] < end)


def test_truth_shapes_and_blank_is_unevoked(small_session):
    t = small_session.truth
    n_classes = SMALL.n_images + 1
    assert t.rates_hz.shape == (n_classes, 50, SMALL.n_units)
    assert t.frames[0] == -1
    # the blank evokes nothing: its rate is each unit's baseline at every step
    assert np.allclose(t.rates_hz[0], t.baseline_hz[None, :].astype(np.float32))
    assert (t.rates_hz >= 0).all()
    # some units are tuned: rates differ across images
    assert (t.rates_hz[1:].std(axis=0).max(axis=0) > 1.0).sum() >= SMALL.n_units // 4


def test_timing_carries_information_beyond_counts(small_session):
    """Some unit has images with similar mean counts but different time courses."""
    r = small_session.truth.rates_hz[1:]  # (C, S, U) without the blank
    peak_step = r.argmax(axis=1)  # (C, U)
    assert (np.ptp(peak_step, axis=0) >= 4).any()  # response peaks move by >= 20 ms across images


def test_invalid_times_tagged_like_allensdk(small_session):
    tags = small_session.invalid_times["tags"].tolist()
    assert ["EcephysSession", str(small_session.session_id), "all_probes"] in tags
    probe_tags = [t for t in tags if t[0] == "EcephysProbe"]
    assert probe_tags and probe_tags[0][2].startswith("probe")


def test_same_seed_same_session_other_session_differs():
    p = SyntheticParams(n_units=5, n_images=3, n_repeats=3)
    a, b, c = make_session(p, 1), make_session(p, 1), make_session(p, 2)
    assert all(np.array_equal(x, y) for x, y in zip(a.spike_times, b.spike_times, strict=True))
    assert not all(
        len(x) == len(y) and np.array_equal(x, y)
        for x, y in zip(a.spike_times, c.spike_times, strict=True)
    )
    assert (c.units["id"] != a.units["id"]).all()


@pytest.mark.parametrize("n_blocks", [1, 2])
def test_block_count_param(n_blocks):
    s = make_session(SyntheticParams(n_units=3, n_images=2, n_repeats=4, n_blocks=n_blocks), 1)
    assert s.presentations["stimulus_block"].nunique() == n_blocks
