"""Tests for npdecode.binning.

Hand-written expected arrays, a naive per-spike reference (hypothesis), an `np.histogram`
oracle over a grid, AllenSDK's algorithm, input errors, and the invalid-interval helpers.
Edges in hand-written cases are binary fractions, so "a spike exactly on an edge" is exact.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npdecode.binning import (
    _EdgeIndex,
    bin_edges,
    bin_session,
    bin_spikes,
    presentations_overlapping,
    remove_invalid_spikes,
    snap_touching,
)


def _load_references() -> ModuleType:
    """bench/references.py, loaded by path: the bench and the tests share one copy."""
    path = Path(__file__).resolve().parents[1] / "bench" / "references.py"
    spec = importlib.util.spec_from_file_location("binning_references", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ref = _load_references()


def _a(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


# --- hand-written cases ---------------------------------------------------------------------


def test_bin_edges_formula_and_last_edge_is_stop():
    edges = bin_edges(_a(0.0, 0.1), _a(1.0, 0.35), 4)
    assert edges.shape == (2, 5)
    np.testing.assert_array_equal(edges[0], [0.0, 0.25, 0.5, 0.75, 1.0])
    assert edges[1].tolist() == ref.scalar_edges(0.1, 0.35, 4)
    assert edges[1, -1] == 0.35


def test_spike_on_inner_edge_goes_to_later_bin():
    counts = bin_spikes([_a(0.25, 0.5, 0.5)], _a(0.0), _a(1.0), 4)
    np.testing.assert_array_equal(counts[0, :, 0], [0, 1, 2, 0])


def test_spike_on_start_is_in_bin_0_and_on_stop_in_no_bin():
    counts = bin_spikes([_a(0.0, 1.0)], _a(0.0), _a(1.0), 4)
    np.testing.assert_array_equal(counts[0, :, 0], [1, 0, 0, 0])


def test_spike_on_shared_stop_goes_to_next_presentation():
    counts = bin_spikes([_a(1.0)], _a(0.0, 1.0), _a(1.0, 2.0), 2)
    np.testing.assert_array_equal(counts[:, :, 0], [[0, 0], [1, 0]])


def test_gaps_empty_units_and_empty_presentations():
    # Presentations [0, 1), [2, 3), [3, 4) with 2 bins; unit 0 empty; unit 1 has spikes
    # before, in, between and after presentations; presentation 2 gets none.
    starts, stops = _a(0.0, 2.0, 3.0), _a(1.0, 3.0, 4.0)
    unit1 = _a(-1.0, 0.0, 0.4, 0.5, 0.99, 1.0, 1.5, 2.5, 2.75, 4.0, 7.0)
    counts = bin_spikes([_a(), unit1], starts, stops, 2)
    expected_unit1 = [[2, 2], [0, 2], [0, 0]]
    assert counts.shape == (3, 2, 2)
    np.testing.assert_array_equal(counts[:, :, 0], np.zeros((3, 2)))
    np.testing.assert_array_equal(counts[:, :, 1], expected_unit1)


def test_hand_written_expected_array():
    # 2 presentations touching at 0.5, a third after a gap; 2 bins each; 3 units.
    starts, stops = _a(0.0, 0.5, 2.0), _a(0.5, 1.0, 3.0)
    trains = [_a(0.1, 0.25, 0.5, 0.75, 2.5), _a(), _a(0.0, 0.0, 0.26, 2.99, 3.0)]
    expected = np.array(
        [
            [[1, 0, 2], [1, 0, 1]],  # presentation 0, bins [0, .25), [.25, .5)
            [[1, 0, 0], [1, 0, 0]],  # presentation 1, bins [.5, .75), [.75, 1)
            [[0, 0, 0], [1, 0, 1]],  # presentation 2, bins [2, 2.5), [2.5, 3)
        ]
    )
    counts = bin_spikes(trains, starts, stops, 2)
    assert counts.dtype == np.uint16
    np.testing.assert_array_equal(counts, expected)


def test_unit_order_is_irrelevant():
    rng = np.random.default_rng(0)
    trains = [np.sort(rng.uniform(0, 10, n)) for n in (50, 0, 200, 7)]
    starts = np.arange(0.0, 10.0, 0.5)
    counts = bin_spikes(trains, starts, starts + 0.5, 5)
    order = [2, 0, 3, 1]
    permuted = bin_spikes([trains[i] for i in order], starts, starts + 0.5, 5)
    np.testing.assert_array_equal(permuted, counts[:, :, order])


def test_one_bin_counts_each_presentation():
    counts = bin_spikes([_a(0.1, 0.2, 0.5, 0.9, 1.0)], _a(0.0, 1.0), _a(1.0, 2.0), 1)
    np.testing.assert_array_equal(counts[:, :, 0], [[4], [1]])


def test_no_presentations_or_no_units_gives_empty_shapes():
    assert bin_spikes([_a(1.0)], _a(), _a(), 3).shape == (0, 3, 1)
    assert bin_spikes([], _a(0.0), _a(1.0), 3).shape == (1, 3, 0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32])
def test_dtype_is_respected(dtype):
    counts = bin_spikes([_a(0.1)], _a(0.0), _a(1.0), 2, dtype=dtype)
    assert counts.dtype == dtype
    np.testing.assert_array_equal(counts[0, :, 0], [1, 0])


def test_uint8_with_many_spikes_spread_over_bins_does_not_overflow():
    # 400 spikes in the presentation take the checked path; no single bin exceeds 255.
    train = np.linspace(0.0, 1.0, 400, endpoint=False)
    counts = bin_spikes([train], _a(0.0), _a(1.0), 4, dtype=np.uint8)
    np.testing.assert_array_equal(counts[0, :, 0], [100, 100, 100, 100])


# --- naive reference (hypothesis) ------------------------------------------------------------


@st.composite
def presentation_tables(draw):
    n_pres = draw(st.integers(0, 5))
    t = draw(st.floats(-10, 10, allow_nan=False))
    starts, stops = [], []
    for _ in range(n_pres):
        gap = draw(st.one_of(st.just(0.0), st.floats(0.0, 2.0)))
        start = t + gap
        stop = start + draw(st.floats(0.01, 3.0))
        starts.append(start)
        stops.append(stop)
        t = stop
    return _a(*starts), _a(*stops), draw(st.integers(1, 4))


@st.composite
def binning_inputs(draw):
    starts, stops, n_bins = draw(presentation_tables())
    edges = [e for s, f in zip(starts, stops, strict=True) for e in ref.scalar_edges(s, f, n_bins)]
    lo = starts[0] - 1 if starts.size else -1.0
    hi = stops[-1] + 1 if starts.size else 1.0
    times = st.floats(lo, hi, allow_nan=False)
    if edges:
        times = st.one_of(times, st.sampled_from(edges))  # spikes exactly on edges
    trains = draw(st.lists(st.lists(times, max_size=25), max_size=4))
    return [np.sort(_a(*t)) for t in trains], starts, stops, n_bins


@settings(max_examples=200, deadline=None)
@given(binning_inputs(), st.sampled_from([np.uint8, np.uint16, np.uint32]))
def test_equals_naive_per_spike_reference(inputs, dtype):
    trains, starts, stops, n_bins = inputs
    counts = bin_spikes(trains, starts, stops, n_bins, dtype=dtype)
    expected = ref.naive_bin_spikes(trains, starts, stops, n_bins)
    assert counts.dtype == dtype
    np.testing.assert_array_equal(counts, expected)


@settings(max_examples=100, deadline=None)
@given(presentation_tables(), st.sampled_from([2, 3, 4, 7, 64, None]), st.data())
def test_lookup_table_equals_binary_search_for_any_table_size(table, max_cells, data):
    # Small tables put many edges in one cell: more correction steps, or the fallback.
    starts, stops, n_bins = table
    if starts.size == 0:
        return
    edges = bin_edges(starts, stops, n_bins)
    index = _EdgeIndex.build(edges, max_cells=max_cells)
    lo, hi = float(edges[0, 0]), float(edges[-1, -1])
    inside = st.one_of(
        st.floats(lo, hi, exclude_max=True), st.sampled_from(edges.ravel()[:-1].tolist())
    )
    times = np.sort(_a(*data.draw(st.lists(inside, max_size=30))))
    expected = ref.naive_bin_spikes([times], starts, stops, n_bins)[:, :, 0].ravel()
    got = np.bincount(index.lookup(times), minlength=starts.size * n_bins + 1)
    np.testing.assert_array_equal(got[:-1], expected)


@pytest.mark.parametrize(("max_cells", "steps"), [(None, 1), (60, 2), (40, 3), (20, None)])
def test_lookup_table_size_sets_steps_or_falls_back(max_cells, steps):
    starts = np.arange(10.0)
    edges = bin_edges(starts, starts + 1.0, 8)  # touching: 81 distinct edges, 1/8 s apart
    index = _EdgeIndex.build(edges, max_cells=max_cells)
    assert index.steps == steps
    times = np.sort(np.r_[np.linspace(0.0, 10.0, 997, endpoint=False), edges.ravel()[:-1]])
    # Touching equal bins: the flat bin is the number of distinct edges <= t, minus one.
    flat_bin = np.searchsorted(np.unique(edges), times, side="right") - 1
    np.testing.assert_array_equal(index.lookup(times), flat_bin)


# --- np.histogram oracle over a grid ---------------------------------------------------------


def _layout(kind: str, n_pres: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Back-to-back 0.25 s presentations, or jittered durations with some gaps (0 s included)."""
    if kind == "touching":
        durations, gaps = np.full(n_pres, 0.25), np.zeros(n_pres)
    else:
        durations, gaps = rng.uniform(0.2, 0.3, n_pres), rng.choice([0.0, 0.1, 3.0], n_pres)
    starts = 5.0 + np.cumsum(gaps + np.r_[0.0, durations[:-1]])
    return starts, starts + durations


@pytest.mark.parametrize("n_bins", [1, 3, 10])
@pytest.mark.parametrize("kind", ["touching", "gapped"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_histogram_oracle(n_bins, kind, dtype, seed):
    # With uint8 the 80 Hz unit has more spikes than 255 and takes the checked path.
    rng = np.random.default_rng(seed)
    starts, stops = _layout(kind, 40, rng)
    span = stops[-1] + 1
    trains = [np.sort(rng.uniform(0, span, rng.poisson(r * span))) for r in (0, 2, 20, 80)]
    counts = bin_spikes(trains, starts, stops, n_bins, dtype=dtype)
    np.testing.assert_array_equal(counts, ref.histogram_bin_spikes(trains, starts, stops, n_bins))
    assert counts.sum() > 0


# --- AllenSDK 2.16.2 convention --------------------------------------------------------------


def test_allensdk_equal_when_no_spike_is_on_an_edge():
    rng = np.random.default_rng(3)
    d, n_bins = 0.25, 10
    starts = np.r_[100.0 + d * np.arange(30), 120.0 + d * np.arange(30)]  # 2 touching blocks
    rel_edges = np.linspace(0.0, d, n_bins + 1)  # how AllenSDK users pass bin edges
    trains = [np.sort(rng.uniform(99, 128, rng.poisson(r * 29))) for r in (1, 10, 60)]
    all_edges = np.r_[
        bin_edges(starts, starts + d, n_bins).ravel(), (starts[:, None] + rel_edges).ravel()
    ]
    trains = [t[np.abs(t[:, None] - all_edges).min(axis=1) > 1e-9] for t in trains]

    ours = bin_spikes(trains, starts, starts + d, n_bins)
    allen = ref.allensdk_presentationwise_spike_counts(trains, starts, rel_edges)
    assert ours.sum() > 100
    np.testing.assert_array_equal(ours, allen)


def test_allensdk_counts_edge_spikes_in_both_bins():
    # Edges are multiples of 1/16: both edge formulas give them exactly.
    d, n_bins = 0.25, 4
    starts = np.r_[10.0 + d * np.arange(8), 20.0 + d * np.arange(4)]
    edges = bin_edges(starts, starts + d, n_bins)  # (P, n_bins + 1)
    rng = np.random.default_rng(4)
    trains = [
        np.sort(np.r_[rng.uniform(9, 22, 200), rng.choice(edges.ravel(), 40)]) for _ in range(3)
    ]
    ours = bin_spikes(trains, starts, starts + d, n_bins).astype(np.int64)
    allen = ref.allensdk_presentationwise_spike_counts(trains, starts, np.arange(5) / 16)
    # allen[p, k, u] == ours[p, k, u] + #{spikes of u exactly on edge t_{k+1} of presentation p}
    on_right_edge = np.stack(
        [(t[None, None, :] == edges[:, 1:, None]).sum(axis=2) for t in trains], axis=2
    )
    assert on_right_edge.sum() > 0
    np.testing.assert_array_equal(allen.astype(np.int64), ours + on_right_edge)


def test_allensdk_inner_edge_example():
    spikes = [_a(10.0625)]  # the edge between bins 0 and 1
    ours = bin_spikes(spikes, _a(10.0), _a(10.25), 4)
    allen = ref.allensdk_presentationwise_spike_counts(spikes, _a(10.0), np.arange(5) / 16)
    np.testing.assert_array_equal(ours[0, :, 0], [0, 1, 0, 0])
    np.testing.assert_array_equal(allen[0, :, 0], [1, 1, 0, 0])


# --- input errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("starts", "stops", "message"),
    [
        (_a(0.0, 0.5), _a(1.0, 1.5), r"presentations 0 and 1 overlap.*stops at 1\.0"),
        (
            _a(0.0, 2.0, 1.0),
            _a(0.5, 2.5, 1.5),
            r"not sorted by start: presentation 2 starts at 1\.0, before presentation 1",
        ),
        (_a(0.0, 1.0), _a(1.0, 1.0), r"presentation 1 has stop <= start"),
        (_a(0.0, np.nan), _a(1.0, 2.0), r"presentation 1 has a non-finite time"),
        (_a(0.0), _a(np.inf), r"presentation 0 has a non-finite time"),
    ],
)
def test_bad_presentations_raise(starts, stops, message):
    with pytest.raises(ValueError, match=message):
        bin_spikes([_a(0.5)], starts, stops, 2)


def test_bad_n_bins_raise():
    with pytest.raises(ValueError, match="n_bins must be >= 1, got 0"):
        bin_spikes([_a(0.5)], _a(0.0), _a(1.0), 0)
    with pytest.raises(TypeError, match="n_bins must be an int, got float"):
        bin_spikes([_a(0.5)], _a(0.0), _a(1.0), 2.0)


def test_bins_below_float_resolution_raise():
    with pytest.raises(ValueError, match="presentation 0 .* too short for 1000 bins"):
        bin_spikes([_a(0.5)], _a(1e9), _a(1e9 + 1e-6), 1000)


@pytest.mark.parametrize(
    ("trains", "message"),
    [
        ([_a(0.1), _a(0.2, 0.1)], r"unit 1: spike times are not sorted.*index 0 is 0\.2"),
        ([_a(0.1, np.nan, 0.3)], r"unit 0: spike times contain NaN \(first at index 1\)"),
        ([_a(), _a(np.nan)], r"unit 1: spike times contain NaN"),
        ([np.zeros((2, 2))], r"unit 0: spike times must be 1-D"),
    ],
)
def test_bad_spike_trains_raise(trains, message):
    with pytest.raises(ValueError, match=message):
        bin_spikes(trains, _a(0.0), _a(1.0), 2)


def test_overflow_raises_instead_of_wrapping():
    trains = [_a(0.9), np.full(300, 0.1)]
    with pytest.raises(ValueError, match=r"unit 1 has 300 spikes in presentation 0, bin 0.*uint8"):
        bin_spikes(trains, _a(0.0), _a(1.0), 2, dtype=np.uint8)
    np.testing.assert_array_equal(bin_spikes(trains, _a(0.0), _a(1.0), 2)[0, 0], [0, 300])


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.uint64])
def test_unsupported_dtype_raises(dtype):
    with pytest.raises(ValueError, match="dtype must be one of uint8, uint16, uint32"):
        bin_spikes([_a(0.5)], _a(0.0), _a(1.0), 2, dtype=dtype)


# --- invalid intervals -----------------------------------------------------------------------


def test_remove_invalid_spikes_closed_at_both_ends():
    kept, n_removed = remove_invalid_spikes(_a(0.0, 1.0, 2.0, 3.0, 4.0), np.array([[1.0, 3.0]]))
    np.testing.assert_array_equal(kept, [0.0, 4.0])
    assert n_removed == 3


def test_remove_invalid_spikes_overlapping_unsorted_intervals():
    spikes = np.arange(0.0, 7.0, 0.5)
    intervals = np.array([[5.0, 5.5], [1.0, 2.0], [1.5, 3.0], [2.0, 2.5]])
    kept, n_removed = remove_invalid_spikes(spikes, intervals)
    np.testing.assert_array_equal(kept, [0.0, 0.5, 3.5, 4.0, 4.5, 6.0, 6.5])
    assert n_removed == spikes.size - kept.size == 7


@pytest.mark.parametrize("empty", [np.empty((0, 2)), np.array([])])
def test_remove_invalid_spikes_without_intervals_keeps_all(empty):
    kept, n_removed = remove_invalid_spikes(_a(0.0, 1.0), empty)
    np.testing.assert_array_equal(kept, [0.0, 1.0])
    assert n_removed == 0


def test_bad_intervals_raise():
    with pytest.raises(ValueError, match=r"interval 1 has start > stop: \[3\.0, 2\.0\]"):
        remove_invalid_spikes(_a(0.0), np.array([[0.0, 1.0], [3.0, 2.0]]))
    with pytest.raises(ValueError, match=r"shape \(K, 2\)"):
        presentations_overlapping(_a(0.0), _a(1.0), np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="intervals contain NaN"):
        presentations_overlapping(_a(0.0), _a(1.0), np.array([[np.nan, 2.0]]))


interval_lists = st.lists(
    st.tuples(st.floats(0, 10), st.floats(0, 3)).map(lambda ab: (ab[0], ab[0] + ab[1])),
    max_size=5,
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.one_of(st.floats(-1, 14), st.sampled_from([0.0, 1.0, 2.5])), max_size=30),
    interval_lists,
)
def test_remove_invalid_spikes_equals_naive(spikes, intervals):
    iv = np.array(intervals).reshape(-1, 2)
    kept, n_removed = remove_invalid_spikes(_a(*spikes), iv)
    expected = [t for t in spikes if not any(a <= t <= b for a, b in intervals)]
    np.testing.assert_array_equal(kept, expected)
    assert n_removed == len(spikes) - len(expected)


def test_presentations_overlapping_boundaries():
    starts, stops = _a(0.0, 1.0, 2.0, 3.0, 4.0), _a(1.0, 2.0, 3.0, 4.0, 5.0)
    intervals = np.array(
        [
            [-1.0, 0.0],  # ends on start 0: shares the instant 0.0 -> overlaps 0
            [2.0, 2.0],  # a point on stop 1 == start 2 -> overlaps 2 only
            [3.2, 3.4],  # inside 3
        ]
    )
    np.testing.assert_array_equal(
        presentations_overlapping(starts, stops, intervals), [True, False, True, True, False]
    )
    assert not presentations_overlapping(starts, stops, np.empty((0, 2))).any()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 10), st.floats(0.01, 2)), max_size=6), interval_lists)
def test_presentations_overlapping_equals_naive(presentations, intervals):
    starts = _a(*(s for s, _ in presentations))
    stops = _a(*(s + d for s, d in presentations))
    got = presentations_overlapping(starts, stops, np.array(intervals).reshape(-1, 2))
    expected = [
        any(a < e and b >= s for a, b in intervals) for s, e in zip(starts, stops, strict=True)
    ]
    np.testing.assert_array_equal(got, np.array(expected, dtype=bool))


# --- float noise at touching presentations (issue 17.5) -----------------------------------


@st.composite
def float_noise_schedules(draw):
    """Back-to-back presentations as real tables hold them: `stop = start + duration`, while
    the next start comes from another float sum, so stops pass the next start by some ulps."""
    n_pres = draw(st.integers(2, 6))
    origin = draw(st.floats(0.0, 1e4, allow_nan=False))
    duration = draw(st.sampled_from([0.25, 0.1, 1 / 3, 0.05]))
    offset = draw(st.floats(0.0, 1.0, allow_nan=False))
    starts = origin + offset + duration * np.arange(n_pres)  # one product each
    stops = np.array([s + duration for s in starts])  # start + duration, rounded again
    stops[:-1] = np.maximum(stops[:-1], np.nextafter(starts[1:], np.inf))  # >= 1 ulp over
    return starts, stops, draw(st.integers(1, 5))


@settings(max_examples=150, deadline=None)
@given(float_noise_schedules(), st.data())
def test_float_noise_overlaps_are_one_boundary_owned_by_the_later_presentation(schedule, data):
    starts, stops, n_bins = schedule
    assert (stops[:-1] > starts[1:]).all()  # every boundary overlaps by float noise
    assert (stops[:-1] - starts[1:] < 1e-6).all()
    snapped, n = snap_touching(starts, stops)
    assert n == starts.size - 1 and (snapped[:-1] == starts[1:]).all()
    edges = [
        e for s, f in zip(starts, snapped, strict=True) for e in ref.scalar_edges(s, f, n_bins)
    ]
    times = st.one_of(
        st.floats(starts[0] - 1, stops[-1] + 1, allow_nan=False),
        st.sampled_from(edges + list(stops)),  # on the boundaries, either version
    )
    trains = [
        np.sort(_a(*t)) for t in data.draw(st.lists(st.lists(times, max_size=20), max_size=3))
    ]
    counts = bin_spikes(trains, starts, stops, n_bins)
    np.testing.assert_array_equal(counts, ref.naive_bin_spikes(trains, starts, snapped, n_bins))
    # each spike counted at most once: inside [first start, last stop) exactly once
    inside = sum(int(((t >= starts[0]) & (t < snapped[-1])).sum()) for t in trains)
    assert counts.sum() == inside


@settings(max_examples=100, deadline=None)
@given(
    float_noise_schedules(),
    st.integers(0, 4),
    st.floats(2e-6, 0.01, allow_nan=False),
)
def test_a_genuine_overlap_is_still_refused(schedule, at, overlap):
    starts, stops, n_bins = schedule
    i = at % (starts.size - 1)
    stops = stops.copy()
    stops[i] = starts[i + 1] + overlap
    with pytest.raises(ValueError, match=rf"presentations {i} and {i + 1} overlap"):
        bin_spikes([_a(starts[0])], starts, stops, n_bins)


def test_bin_session_snaps_float_noise_and_reports_it():
    starts = [0.7 + k * 0.3 for k in range(3)]  # 0.7, 1.0, 1.2999999999999998
    pres = pd.DataFrame(
        {
            "presentation_id": [0, 1, 2],
            "start_time": starts,
            "stop_time": [s + 0.3 for s in starts],  # 1.0 + 0.3 = 1.3: one ulp past start 2
            "frame": [1.0, 2.0, 3.0],
        }
    )
    assert pres["stop_time"][1] > pres["start_time"][2]
    units = pd.DataFrame({"probe": ["probeA"], "probe_id": [1], "unit_id": [5]})
    invalid = pd.DataFrame({"start_time": [], "stop_time": [], "tags": []})
    spikes = [_a(1.0, starts[2], 1.3)]  # on the boundaries: the later presentation's
    counts, out, report = bin_session(spikes, units, pres, invalid, 1)
    np.testing.assert_array_equal(counts[:, 0, 0], [0, 1, 2])
    assert out["stop_time"][1] == starts[2]
    assert report["stops_snapped_to_next_start"] == 1
