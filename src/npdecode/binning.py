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


def _merge(intervals: np.ndarray) -> np.ndarray:
    """Sort and merge closed intervals (K, 2) into disjoint ones."""
    if len(intervals) == 0:
        return np.zeros((0, 2))
    iv = intervals[np.argsort(intervals[:, 0])]
    starts, stops = [iv[0, 0]], [iv[0, 1]]
    for a, b in iv[1:]:
        if a <= stops[-1]:
            stops[-1] = max(stops[-1], b)
        else:
            starts.append(a)
            stops.append(b)
    return np.stack([starts, stops], axis=1)


def remove_invalid_spikes(spike_times: np.ndarray, intervals: np.ndarray) -> tuple[np.ndarray, int]:
    """Drop spikes inside any closed interval [start, stop]; return kept spikes and the count removed."""
    merged = _merge(np.asarray(intervals, dtype=np.float64).reshape(-1, 2))
    if len(merged) == 0:
        return spike_times, 0
    lo = np.searchsorted(spike_times, merged[:, 0], side="left")
    hi = np.searchsorted(spike_times, merged[:, 1], side="right")
    keep = np.ones(len(spike_times), bool)
    for a, b in zip(lo, hi, strict=True):
        keep[a:b] = False
    return spike_times[keep], int(len(spike_times) - keep.sum())


def presentations_overlapping(
    starts: np.ndarray, stops: np.ndarray, intervals: np.ndarray
) -> np.ndarray:
    """(P,) True where presentation [start, stop) overlaps a closed interval [a, b]: a < stop and b >= start."""
    iv = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
    if len(iv) == 0:
        return np.zeros(len(starts), bool)
    return ((iv[None, :, 0] < stops[:, None]) & (iv[None, :, 1] >= starts[:, None])).any(axis=1)
