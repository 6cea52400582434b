"""POYO's tokens: by hand, against a naive per-spike reference (hypothesis), and against
`bin_spikes` on a synthetic session's presentations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npdecode.binning import bin_spikes
from npdecode.models.poyo_tokens import (
    END,
    SPIKE,
    START,
    SpikeTable,
    Tokens,
    check_windows,
    query_times,
    tokenize,
)
from npdecode.sources.synthetic import SyntheticSession


def _a(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def test_tokens_by_hand() -> None:
    # unit 0 fires at 0.5, 1.0 (on the start: in), 1.25; unit 1 at 1.5 and 2.0 (on the stop: out)
    table = SpikeTable.from_trains([_a(1.25, 0.5, 1.0), _a(2.0, 1.5)])
    tok = tokenize(table, _a(1.0, 2.0), _a(2.0, 2.5))
    np.testing.assert_array_equal(tok.unit, [[0, 0, 1, 1, 0, 0, 1], [0, 0, 1, 1, 1, 0, 0]])
    np.testing.assert_array_equal(tok.kind[0], [START, END, START, END, SPIKE, SPIKE, SPIKE])
    np.testing.assert_array_equal(tok.time[0], np.float32([0, 1, 0, 1, 0, 0.25, 0.5]))
    np.testing.assert_array_equal(tok.time[1], np.float32([0, 0.5, 0, 0.5, 0, 0, 0]))
    np.testing.assert_array_equal(tok.mask, [[True] * 7, [True] * 5 + [False] * 2])
    np.testing.assert_array_equal(tok.length, np.float32([1.0, 0.5]))


def test_a_window_with_no_spikes_still_has_every_unit() -> None:
    tok = tokenize(SpikeTable.from_trains([_a(), _a(5.0)]), _a(0.0), _a(1.0))
    assert tok.unit.shape == (1, 4)
    np.testing.assert_array_equal(tok.kind[0], [START, END, START, END])


def test_query_times_are_bin_centres() -> None:
    np.testing.assert_allclose(query_times(_a(1.0, 0.5), 4)[1], [0.0625, 0.1875, 0.3125, 0.4375])
    np.testing.assert_allclose(query_times(_a(0.25), 1), [[0.125]])


@pytest.mark.parametrize(
    ("starts", "stops", "match"),
    [
        (_a(0.0, 1.0), _a(1.0), "same length"),
        (_a(1.0), _a(1.0), "stop > start"),
        (_a(np.nan), _a(1.0), "window 0"),
    ],
)
def test_bad_windows_are_named(starts: np.ndarray, stops: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_windows(starts, stops, "session 7")


# --- every spike of a window exactly once (hypothesis) ----------------------------------


@st.composite
def windows_and_trains(draw):
    n = draw(st.integers(1, 5))
    starts = _a(*draw(st.lists(st.floats(-5, 5), min_size=n, max_size=n)))
    stops = starts + _a(*draw(st.lists(st.floats(0.01, 3), min_size=n, max_size=n)))
    times = st.one_of(st.floats(-6, 9), st.sampled_from([*starts, *stops]))  # on edges too
    trains = draw(st.lists(st.lists(times, max_size=20), min_size=1, max_size=4))
    return [_a(*t) for t in trains], starts, stops  # unsorted trains: the table sorts


def naive_tokens(trains: list[np.ndarray], start: float, stop: float) -> list[tuple[int, float]]:
    return sorted(
        (u, t - start) for u, train in enumerate(trains) for t in train if start <= t < stop
    )


def spike_tokens(tok: Tokens, b: int) -> list[tuple[int, float]]:
    keep = tok.mask[b] & (tok.kind[b] == SPIKE)
    return sorted(zip(tok.unit[b][keep].tolist(), tok.time[b][keep].tolist(), strict=True))


@settings(max_examples=200, deadline=None)
@given(windows_and_trains())
def test_every_spike_of_a_window_is_one_token(inputs) -> None:
    trains, starts, stops = inputs
    tok = tokenize(SpikeTable.from_trains(trains), starts, stops)
    for b in range(len(starts)):
        got, want = spike_tokens(tok, b), naive_tokens(trains, starts[b], stops[b])
        assert [u for u, _ in got] == [u for u, _ in want]  # the same spikes, none twice
        np.testing.assert_allclose([t for _, t in got], [t for _, t in want], atol=1e-6, rtol=1e-6)
        for kind, time in ((START, 0.0), (END, stops[b] - starts[b])):
            edge = tok.mask[b] & (tok.kind[b] == kind)
            np.testing.assert_array_equal(tok.unit[b][edge], np.arange(len(trains)))
            np.testing.assert_allclose(tok.time[b][edge], time, rtol=1e-6)
        pad = ~tok.mask[b]
        assert not (tok.unit[b][pad].any() or tok.kind[b][pad].any() or tok.time[b][pad].any())


def test_tokens_count_what_bin_spikes_counts(small_session: SyntheticSession) -> None:
    pres = small_session.presentations
    starts, stops = pres["start_time"].to_numpy(), pres["stop_time"].to_numpy()
    table = SpikeTable.from_trains(small_session.spike_times)
    counts = bin_spikes(small_session.spike_times, starts, stops, 1)[:, 0]  # (P, U)
    tok = tokenize(table, starts, stops)
    spikes = tok.mask & (tok.kind == SPIKE)
    per_unit = np.stack(
        [np.bincount(tok.unit[b][spikes[b]], minlength=table.n_units) for b in range(len(starts))]
    )
    assert counts.sum() > 1000  # a real test: the session's presentations hold many spikes
    np.testing.assert_array_equal(per_unit, counts)
