"""Spike binning kernels (pure numpy).

Placeholder implementation; the data-stages work replaces it with the fast kernel.
"""

from __future__ import annotations

import numpy as np


def bin_spikes(
    spike_times: list[np.ndarray],
    starts: np.ndarray,
    stops: np.ndarray,
    n_bins: int,
    dtype: np.dtype | None = None,
) -> np.ndarray:
    """Count spikes in `n_bins` equal half-open bins per presentation: (P, n_bins, U)."""
    starts = np.asarray(starts, dtype=np.float64)
    stops = np.asarray(stops, dtype=np.float64)
    width = (stops - starts) / n_bins
    edges = starts[:, None] + width[:, None] * np.arange(n_bins + 1)  # (P, n_bins + 1)
    out = np.zeros((len(starts), n_bins, len(spike_times)), dtype=dtype or np.uint16)
    flat = edges[:, :-1].ravel()
    for u, t in enumerate(spike_times):
        idx = np.searchsorted(flat, t, side="right") - 1
        ok = idx >= 0
        p = idx[ok] // n_bins
        inside = t[ok] < stops[p]
        counts = np.bincount(idx[ok][inside], minlength=flat.size)
        out[:, :, u] = counts.reshape(len(starts), n_bins)
    return out
