"""Continuous binning of a reaching session: spike counts, kinematic targets, history windows.

Counts come from the one binning kernel, `npdecode.binning.bin_spikes`, with a single
window spanning the binned stretch: its half-open bins `[t_k, t_{k+1})` are the time bins
here. Bins start at `t[0]`; a bin is `width_s` long, a whole number of 4 ms samples, and
the last partial bin is dropped.

A bin's target (position, velocity or acceleration) is the mean of the 4 ms samples whose
time falls in the bin (`bin_targets`): with `t` on the 4 ms grid, each bin holds exactly
`width_s / 4 ms` samples, so this is a reshape and a mean. Velocity is `np.gradient` of
`cursor_pos` over `t` first (`npdecode.mat.read.kinematics`), then averaged: the bin's
mean velocity, i.e. its displacement over its width up to the gradient's edge terms.
"""

from __future__ import annotations

import numpy as np

from npdecode.binning import bin_spikes

SAMPLE_S = 0.004


def samples_per_bin(width_s: float) -> int:
    """How many 4 ms samples a bin of `width_s` holds; ValueError unless a whole number."""
    k = int(round(width_s / SAMPLE_S))
    if k < 1 or abs(k * SAMPLE_S - width_s) > 1e-9:
        raise ValueError(f"bin width {width_s} s is not a whole number of 4 ms samples")
    return k


def bin_counts(
    spike_times: list[np.ndarray], t: np.ndarray, width_s: float, dtype: np.dtype | None = None
) -> np.ndarray:
    """(B, U) spike counts in consecutive bins of `width_s` from `t[0]`.

    B = len(t) // samples_per_bin(width_s): bin k spans `[t[0] + k w, t[0] + (k + 1) w)`.
    """
    k = samples_per_bin(width_s)
    n = len(t) // k
    if n == 0:
        return np.zeros((0, len(spike_times)), dtype=dtype or np.uint16)
    start = np.array([t[0]])
    stop = np.array([t[0] + n * k * SAMPLE_S])
    counts = bin_spikes(spike_times, start, stop, n, dtype=dtype)  # (1, B, U)
    return counts[0]  # (1, B, U) -> (B, U)


def bin_targets(values: np.ndarray, width_s: float) -> np.ndarray:
    """(B, D) mean of the (T, D) per-sample `values` over each bin (trailing samples dropped)."""
    k = samples_per_bin(width_s)
    n = values.shape[0] // k
    return values[: n * k].reshape(n, k, -1).mean(axis=1)  # (n*k, D) -> (n, k, D) -> (n, D)


def history(x: np.ndarray, h: int) -> np.ndarray:
    """(B, h, U) windows: row k holds bins k-h+1..k (zeros before the first bin).

    Whether a window is usable (all its bins in one split block) is `blocks.valid_rows`'s
    business; the zero padding only keeps shapes aligned.
    """
    if h < 1:
        raise ValueError(f"history must be >= 1 bin, got {h}")
    pad = np.concatenate([np.zeros((h - 1, x.shape[1]), dtype=x.dtype), x])  # (B+h-1, U)
    # (B, h, U) view on the padded array: window k = pad[k : k + h]
    win = np.lib.stride_tricks.sliding_window_view(pad, h, axis=0)  # (B, U, h)
    return np.ascontiguousarray(win.transpose(0, 2, 1))  # (B, U, h) -> (B, h, U)


def overlapping(intervals: np.ndarray, t0: float, n: int, width_s: float) -> np.ndarray:
    """(n,) True for the bins `[t0 + k w, t0 + (k + 1) w)` that overlap one of the (G, 2)
    `[start, stop)` intervals widened by one 4 ms sample each side (the velocity of a
    sample next to a gap is a difference across it)."""
    out = np.zeros(n, dtype=bool)
    for a, b in np.asarray(intervals, dtype=np.float64).reshape(-1, 2):
        lo = int(np.floor((a - SAMPLE_S - t0) / width_s))
        hi = int(np.ceil((b + SAMPLE_S - t0) / width_s))
        out[max(lo, 0) : max(min(hi, n), 0)] = True
    return out
