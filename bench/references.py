"""Reference binning implementations that `npdecode.binning.bin_spikes` is checked against.

One place for them: `bench/bench_binning.py` imports this module (it runs with `bench/` on
`sys.path`), and `tests/test_binning.py` loads it by file path. Nothing here is used by the
pipeline, and nothing here imports npdecode, so a reference cannot inherit the kernel's bugs.

All return (P, n_bins, U) counts, like `bin_spikes`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def scalar_edges(start: float, stop: float, n_bins: int) -> list[float]:
    """Bin edges of one presentation in Python floats: the documented formula, written out."""
    return [start + k * (stop - start) / n_bins for k in range(n_bins)] + [stop]


def naive_bin_spikes(
    spike_times: Sequence[np.ndarray], starts: np.ndarray, stops: np.ndarray, n_bins: int
) -> np.ndarray:
    """Plain Python loop over every spike: find its presentation, then its half-open bin."""
    starts_f = [float(s) for s in starts]
    stops_f = [float(s) for s in stops]
    edges = [scalar_edges(s, e, n_bins) for s, e in zip(starts_f, stops_f, strict=True)]
    out = np.zeros((len(starts_f), n_bins, len(spike_times)), dtype=np.int64)
    for u, train in enumerate(spike_times):
        for t in (float(x) for x in train):
            for p, e in enumerate(edges):
                for k in range(n_bins):
                    if e[k] <= t < e[k + 1]:
                        out[p, k, u] += 1
    return out


def histogram_bin_spikes(
    spike_times: Sequence[np.ndarray], starts: np.ndarray, stops: np.ndarray, n_bins: int
) -> np.ndarray:
    """Per presentation, `np.histogram` of the spikes in ``[start, stop)`` over its edges.

    Spikes at ``stop`` are dropped first, because `np.histogram` closes its last bin.
    """
    out = np.zeros((len(starts), n_bins, len(spike_times)), dtype=np.int64)
    for p, (start, stop) in enumerate(zip(starts, stops, strict=True)):
        edges = scalar_edges(float(start), float(stop), n_bins)
        for u, train in enumerate(spike_times):
            inside = train[(train >= start) & (train < stop)]
            out[p, :, u] = np.histogram(inside, bins=edges)[0]
    return out


def allensdk_presentationwise_spike_counts(
    spike_times: Sequence[np.ndarray],
    starts: np.ndarray,
    bin_edges: np.ndarray,
    dtype: np.dtype | None = None,
) -> np.ndarray:
    """AllenSDK 2.16.2 ``EcephysSession.presentationwise_spike_counts``, its counting core.

    Faithful to ``build_time_window_domain`` and ``build_spike_histogram`` in
    ``allensdk/brain_observatory/ecephys/ecephys_session.py``: ``bin_edges`` are relative to
    each presentation's start (stop times are not used); per unit, two ``np.searchsorted``
    calls of the flattened bin starts (side "left") and bin ends (side "right") into the
    unit's spikes, so each bin is closed at both ends. Left out: the xarray wrapper, the
    table filtering, ``binarize`` and its overlap warning.

    Args:
        spike_times: U sorted spike trains, s.
        starts: (P,) presentation start times, s.
        bin_edges: (n_bins + 1,) edges relative to each start, s.
        dtype: Output dtype; AllenSDK's default is uint16 (it wraps on overflow).

    Returns:
        (P, n_bins, U) counts.
    """
    domain = _build_time_window_domain(np.asarray(bin_edges, dtype=np.float64), starts)
    return _build_spike_histogram(domain, spike_times, dtype=dtype)


def _build_time_window_domain(bin_edges: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    domain = np.tile(bin_edges[None, :], (len(offsets), 1))  # (P, n_bins + 1)
    domain += np.asarray(offsets, dtype=np.float64)[:, None]
    return domain


def _build_spike_histogram(
    time_domain: np.ndarray, spike_times: Sequence[np.ndarray], dtype: np.dtype | None
) -> np.ndarray:
    tiled_data = np.zeros(
        (time_domain.shape[0], time_domain.shape[1] - 1, len(spike_times)),
        dtype=np.uint16 if dtype is None else dtype,
    )
    starts = time_domain[:, :-1]
    ends = time_domain[:, 1:]
    for ii, data in enumerate(spike_times):
        start_positions = np.searchsorted(data, starts.flat)
        end_positions = np.searchsorted(data, ends.flat, side="right")
        counts = end_positions - start_positions
        tiled_data[:, :, ii].flat = counts
    return tiled_data


def old_pipeline_bin_spikes(
    spike_times: Sequence[np.ndarray], starts: np.ndarray, stops: np.ndarray, n_bins: int
) -> np.ndarray:
    """The notebook-era pipeline's binning: a Python loop per neuron, per presentation.

    Reconstructed from the seed notes (``process_neuron``: one count vector per unit, bins
    of every presentation in time order); the original code is not available. Each
    presentation masks the unit's whole spike train, then histograms it over
    ``np.linspace(start, stop, n_bins + 1)``. Used for timing only.
    """
    out = np.zeros((len(starts), n_bins, len(spike_times)), dtype=np.int64)
    for u, train in enumerate(spike_times):
        for p, (start, stop) in enumerate(zip(starts, stops, strict=True)):
            edges = np.linspace(start, stop, n_bins + 1)
            in_window = train[(train >= start) & (train < stop)]
            out[p, :, u] = np.histogram(in_window, bins=edges)[0]
    return out
