"""Exact, vectorised inhomogeneous Poisson spike trains on piecewise-constant rates.

A unit's rate is constant on each cell of a shared time partition `edges` (K cells). The
session is cut into segments (runs of whole cells; e.g. the ~100 s bins of the presence
ratio). Sampling has two steps, so that the spike count of every (unit, segment) is known
before any spike time is drawn (an NWB writer needs the ragged index first):

1. `segment_counts`: counts ~ Poisson(expected spikes in each segment);
2. `place_spikes`: the n spikes of a segment are n sorted uniforms on the segment's share
   of the cumulative rate (exponential spacings: sorted without a sort), mapped back to
   time through the inverse of the cumulative rate, which is piecewise linear. The result
   is sorted by construction and has exactly the law of a Poisson process with that rate.

No per-unit Python loop: the units of a chunk are stacked on one increasing cumulative
axis (`stack_cumulative`), and one `np.interp` (a search that starts from the previous
answer, fast on sorted keys) inverts it for all of their spikes at once.
"""

from __future__ import annotations

import numpy as np


def stack_cumulative(buf: np.ndarray) -> np.ndarray:
    """Turn `buf` (u, K+1) in place into the units' cumulative expected spikes, stacked.

    On entry buf[:, 1:] holds each unit's expected spikes per cell (rate x width); column
    0 is ignored. On return buf[j, k] is unit j's expected spikes before edge k, plus an
    offset that puts unit j one spike above unit j-1's end: one increasing axis for the
    chunk. Differences along a row are unaffected by the offset.
    """
    buf[:, 0] = 0.0
    np.cumsum(buf, axis=1, out=buf)
    buf += np.concatenate([[0.0], np.cumsum(buf[:, -1] + 1.0)[:-1]])[:, None]
    return buf


def segment_counts(means: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson spike counts (int64) for (..., B) expected counts per segment."""
    return rng.poisson(np.maximum(means, 0.0)).astype(np.int64)


def sorted_uniforms(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each of the (N,) counts n, n sorted uniforms on [0, 1), concatenated in order."""
    spacings, seg, inv_total, base = _spacings(np.asarray(counts, dtype=np.int64), rng)
    return (spacings - base[seg]) * inv_total[seg]


def _spacings(
    n: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exponential spacings: with E_1..E_{n+1} iid Exp(1), (E_1 + ... + E_k) / (E_1 + ... +
    E_{n+1}) for k = 1..n are the order statistics of n uniforms: sorted without a sort.

    Returns the running sums at the kept spacings (sum n,), the segment of each (among the
    segments with n > 0), and per such segment 1 / its total and the running sum before it.
    """
    live = n[n > 0]
    if live.size == 0:
        return np.zeros(0), np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    csum = np.cumsum(rng.standard_exponential(int(live.sum()) + live.size))
    ends = np.cumsum(live + 1) - 1  # each segment's (n+1)-th spacing only normalises
    base = np.concatenate([[0.0], csum[ends[:-1]]])
    keep = np.ones(csum.size, bool)
    keep[ends] = False
    seg = np.repeat(np.arange(live.size), live)
    return csum[keep], seg, 1.0 / (csum[ends] - base), base


def place_spikes(
    axis: np.ndarray,
    tiled_edges: np.ndarray,
    seg_edges: np.ndarray,
    counts: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Spike times of a chunk of units, unit after unit, each unit's times sorted.

    Args:
        axis: (u, K+1) from `stack_cumulative`.
        tiled_edges: the K+1 cell edges (s) repeated at least u times (`np.tile`), so a
            chunk-wide search maps each unit's axis back to time.
        seg_edges: (B+1,) indices into the edges where segments start/end (0 ... K).
        counts: (u, B) spikes of each unit in each segment (from `segment_counts`).
        rng: the stream the positions are drawn from.

    Returns:
        (counts.sum(),) float64 times: unit 0's sorted times, then unit 1's, ...
    """
    flat = counts.ravel()
    live = flat > 0
    if not live.any():
        return np.zeros(0)
    lo = axis[:, seg_edges[:-1]].ravel()[live]  # axis at each segment's start
    width = (axis[:, seg_edges[1:]] - axis[:, seg_edges[:-1]]).ravel()[live]
    if np.any(width <= 0):
        raise ValueError("spikes requested in a segment where the rate is zero")
    spacings, seg, inv_total, base = _spacings(flat, rng)
    scale = width * inv_total  # a segment's spacing sums map linearly onto its axis span
    key = (lo - base * scale)[seg] + spacings * scale[seg]  # (N,) increasing within a unit
    times = np.interp(key, axis.ravel(), tiled_edges[: axis.size])
    # a key rounded onto another cell's edge can swap two spikes < 1 µs apart: re-sort those
    ends = np.cumsum(counts.sum(axis=1))
    down = np.flatnonzero(np.diff(times) < 0) + 1
    for j in np.unique(np.searchsorted(ends, down[~np.isin(down, ends)], side="right")):
        start = ends[j - 1] if j else 0
        times[start : ends[j]].sort()
    return times
