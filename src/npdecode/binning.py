"""Spike-binning kernels: pure numpy, no I/O.

Conventions used throughout (the project's one definition of a bin):

- Times are in seconds, float64.
- Presentation ``p`` spans ``[starts[p], stops[p])`` and is split into ``n_bins`` equal half-open
  bins ``[t_k, t_{k+1})`` with ``t_k = start + k * (stop - start) / n_bins`` for ``k < n_bins``
  (evaluated in float64 exactly in that order: ``(k * (stop - start)) / n_bins``, then added to
  ``start``) and ``t_{n_bins} = stop``. `bin_edges` is that definition.
- A spike is counted at most once; spikes outside every presentation are ignored.
- Counts come back as ``(P, n_bins, U)``: presentation, bin, unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

DEFAULT_DTYPE = np.dtype(np.uint16)
ALLOWED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.uint32))

# Units whose spikes are gathered and counted in one vectorised pass (a few MB of temporaries).
_UNITS_PER_BLOCK = 16
# Spikes looked up per vectorised step, so temporaries stay in L2 cache.
_LOOKUP_CHUNK = 1 << 16
# The lookup table has at most this many cells per bin edge (memory cap).
_CELLS_PER_EDGE = 8
# Above this many correction steps the table loses to a plain binary search.
_MAX_LOOKUP_STEPS = 4
# At most this many time windows are cut out of each spike train (see `_windows`).
_MAX_WINDOWS = 16
# Back-to-back presentations whose stop passes the next start by less than this touch:
# `start + duration` arithmetic leaves overlaps of a few ulps (1e-15 s), no real overlap.
TOUCH_TOLERANCE_S = 1e-6


def bin_edges(starts: np.ndarray, stops: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin edges of every presentation, the one definition all binning code uses.

    Args:
        starts: (P,) presentation start times, s.
        stops: (P,) presentation stop times, s.
        n_bins: Number of equal bins per presentation.

    Returns:
        (P, n_bins + 1) float64 edges: ``edges[p, k] = start + k * (stop - start) / n_bins``
        for ``k < n_bins`` and ``edges[p, n_bins] = stop``. No input checks are done here.
    """
    starts = np.asarray(starts, dtype=np.float64)
    stops = np.asarray(stops, dtype=np.float64)
    k = np.arange(n_bins + 1, dtype=np.float64)
    # (P, 1) + (n_bins + 1,) * (P, 1) / n_bins -> (P, n_bins + 1); same op order as
    # the scalar formula `start + k * (stop - start) / n_bins`.
    edges = starts[:, None] + k * (stops - starts)[:, None] / n_bins
    edges[:, -1] = stops
    return edges


def bin_spikes(
    spike_times: list[np.ndarray],
    starts: np.ndarray,
    stops: np.ndarray,
    n_bins: int,
    dtype: np.dtype | None = None,
) -> np.ndarray:
    """Count each unit's spikes in equal half-open bins of every presentation.

    Presentation ``p`` is split into ``n_bins`` bins ``[t_k, t_{k+1})`` with edges from
    `bin_edges`: a spike exactly on an inner edge goes to the later bin, one on ``start`` to
    bin 0, one on ``stop`` to no bin of ``p`` (it is bin 0 of the next presentation when the
    two touch). Spikes outside every presentation are ignored.

    Difference from AllenSDK 2.16.2 ``EcephysSession.presentationwise_spike_counts``: AllenSDK
    counts bin ``k`` as ``searchsorted(spikes, t_k, "left")`` to
    ``searchsorted(spikes, t_{k+1}, "right")``, i.e. closed at both ends, so for identical
    edges ``allen[p, k, u] == ours[p, k, u] + #{spikes of u equal to t_{k+1}}``: a spike on an
    inner edge is counted in both bins, one on ``stop`` also in the last bin of ``p``. AllenSDK
    also places the same relative edges after every start (stop times are ignored) and does
    not remove spikes in ``invalid_times``; use `remove_invalid_spikes` before binning.

    How: each unit's spikes inside a few windows around the presentations are found by binary
    search (long gaps, e.g. other stimuli, are never read); blocks of units are concatenated,
    mapped to their bin by an exact table lookup (`_EdgeIndex`) and added into the output with
    ``np.add.at``. One pass over each train checks it is sorted.

    Args:
        spike_times: U spike trains; ``spike_times[u]`` holds unit u's spike times (s),
            sorted ascending, no NaN. Units are independent, in any order.
        starts: (P,) presentation start times (s), sorted. Presentations must not overlap;
            touching (``stops[i] == starts[i + 1]``) and gaps are allowed. A stop that passes
            the next start by less than ``TOUCH_TOLERANCE_S`` (float noise) counts as
            touching: it is moved onto that start (`snap_touching`), so the later
            presentation owns the boundary, as half-open bins say.
        stops: (P,) presentation stop times (s), ``stops > starts``.
        n_bins: Bins per presentation, >= 1.
        dtype: Output dtype, one of uint8, uint16 (default), uint32.

    Returns:
        (P, n_bins, U) counts in ``dtype``, laid out unit-major in memory: ``out[:, :, u]``
        is one contiguous block, so writing one column per unit (parquet) copies nothing.
        Reshaping to (P * n_bins, U) is a view.

    Raises:
        ValueError: For unsorted or overlapping presentations, ``stop <= start``, NaN or
            infinite presentation times, ``n_bins < 1``, bins narrower than float64 can
            resolve, an unsorted spike train or one with NaN, an unsupported dtype, or a count
            that does not fit ``dtype`` (counts never wrap).
        TypeError: If ``n_bins`` is not an int.
    """
    out_dtype = _check_dtype(dtype)
    starts, stops = _check_presentations(starts, stops, n_bins)
    trains = _check_spike_trains(spike_times)
    edges = bin_edges(starts, stops, n_bins)  # (P, n_bins + 1)
    _check_edges(edges)

    n_pres, n_units = starts.size, len(trains)
    n_rows = n_pres * n_bins
    # Unit-major counts: row u holds unit u's (P * n_bins) counts plus one spare slot that
    # collects its spikes in no bin. Each unit's scatter stays in one contiguous block, and
    # column-wise consumers (a parquet column per unit) read each unit without a copy.
    flat = np.zeros((n_units, n_rows + 1), dtype=out_dtype)
    by_unit = flat[:, :n_rows]  # (U, P * n_bins), spare slot cut
    out = by_unit.T.reshape(n_pres, n_bins, n_units)  # a view: (P * n_bins, U) -> (P, n_bins, U)
    if n_rows == 0 or n_units == 0:
        return out
    index = _EdgeIndex.build(edges)  # lookup -> row (presentation * n_bins + bin)
    spans = _window_spans(trains, _windows(starts, stops))  # (U, W, 2) index ranges
    n_inside = (spans[:, :, 1] - spans[:, :, 0]).sum(axis=1)  # (U,) bounds every count of u
    safe = n_inside <= np.iinfo(out_dtype).max
    _scatter_counts(flat, trains, spans, np.flatnonzero(safe), index)
    for u in np.flatnonzero(~safe):
        by_unit[u] = _checked_counts(trains, spans, int(u), index, n_bins, out_dtype)
    return out


def snap_touching(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, int]:
    """Stops with float-noise overlaps removed: ``stops[i]`` that passes ``starts[i + 1]``
    by less than ``TOUCH_TOLERANCE_S`` becomes ``starts[i + 1]``.

    Presentations built as ``start + duration`` overlap their successor by a few ulps;
    they are back to back, and the later one owns the shared boundary (half-open bins).
    A larger overlap is left alone, for the caller to refuse.

    Args:
        starts: (P,) start times, s, sorted.
        stops: (P,) stop times, s.

    Returns:
        The stops (a new array when any changed) and how many changed.
    """
    stops = np.asarray(stops, dtype=np.float64)
    over = stops[:-1] - starts[1:]  # (P - 1,) > 0 where i runs into i + 1
    snap = (over > 0) & (over < TOUCH_TOLERANCE_S)
    if not snap.any():
        return stops, 0
    stops = stops.copy()
    stops[:-1][snap] = starts[1:][snap]
    return stops, int(snap.sum())


def remove_invalid_spikes(spike_times: np.ndarray, intervals: np.ndarray) -> tuple[np.ndarray, int]:
    """Drop spikes that fall inside any invalid interval.

    Intervals are closed at both ends, as AllenSDK's own interval tests are: a spike exactly
    on an interval's start or stop is removed. Intervals may overlap and come in any order.

    Args:
        spike_times: (S,) spike times of one unit, s (any order; order is kept).
        intervals: (K, 2) ``[start, stop]`` rows, s, ``start <= stop``; K may be 0.

    Returns:
        The kept spike times (a new array) and the number of spikes removed.

    Raises:
        ValueError: If ``intervals`` is not (K, 2), has NaN, or a row with start > stop.
    """
    spikes = np.asarray(spike_times, dtype=np.float64)
    if spikes.ndim != 1:
        raise ValueError(f"spike_times must be 1-D, got shape {spikes.shape}")
    lo, hi = _merge_closed_intervals(intervals)
    if lo.size == 0:
        return spikes.copy(), 0
    # Last merged interval starting at or before each spike; inside iff the spike <= its stop.
    j = np.searchsorted(lo, spikes, side="right") - 1
    inside = (j >= 0) & (spikes <= hi[np.maximum(j, 0)])
    n_removed = int(np.count_nonzero(inside))
    return spikes[~inside], n_removed


def spikes_inside(spike_times: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    """The spikes of one sorted train that fall inside any invalid interval (closed at both ends).

    The complement of `remove_invalid_spikes` for a sorted train, in O(K log S): only the
    interval bounds are searched, so a long train with a few short invalid intervals costs
    microseconds and is never copied.

    Args:
        spike_times: (S,) sorted spike times of one unit, s.
        intervals: (K, 2) ``[start, stop]`` rows, s; K may be 0.

    Returns:
        (n,) the spikes inside, sorted (slices of `spike_times` joined).
    """
    lo, hi = _merge_closed_intervals(intervals)
    first = np.searchsorted(spike_times, lo, side="left")
    last = np.searchsorted(spike_times, hi, side="right")
    pieces = [spike_times[a:b] for a, b in zip(first, last, strict=True) if b > a]
    return np.concatenate(pieces) if pieces else spike_times[:0]


def presentations_overlapping(
    starts: np.ndarray, stops: np.ndarray, intervals: np.ndarray
) -> np.ndarray:
    """Which presentations overlap any invalid interval.

    A presentation ``[s, e)`` (half-open, like its bins) and a closed interval ``[a, b]`` overlap
    iff ``a < e and b >= s``: they share at least one instant. An interval that ends exactly on
    ``s`` overlaps (``b == s`` is inside both); one that starts exactly on ``e`` does not.

    Args:
        starts: (P,) presentation start times, s (any order).
        stops: (P,) presentation stop times, s.
        intervals: (K, 2) closed ``[start, stop]`` rows, s; may overlap, any order, K may be 0.

    Returns:
        (P,) bool, True where the presentation overlaps at least one interval.

    Raises:
        ValueError: If starts and stops differ in shape, or ``intervals`` is malformed.
    """
    starts = np.asarray(starts, dtype=np.float64)
    stops = np.asarray(stops, dtype=np.float64)
    if starts.ndim != 1 or starts.shape != stops.shape:
        raise ValueError(
            f"starts and stops must be 1-D of equal length, got {starts.shape} and {stops.shape}"
        )
    lo, hi = _merge_closed_intervals(intervals)
    if lo.size == 0:
        return np.zeros(starts.shape, dtype=bool)
    # Merged intervals are disjoint and sorted, so the first one with b >= s is the only
    # candidate: every later one starts even later.
    j = np.searchsorted(hi, starts, side="left")
    return (j < lo.size) & (lo[np.minimum(j, lo.size - 1)] < stops)


# --- input checks -------------------------------------------------------------------------


def _check_dtype(dtype: np.dtype | None) -> np.dtype:
    out_dtype = DEFAULT_DTYPE if dtype is None else np.dtype(dtype)
    if out_dtype not in ALLOWED_DTYPES:
        names = ", ".join(d.name for d in ALLOWED_DTYPES)
        raise ValueError(f"dtype must be one of {names}, got {out_dtype.name}")
    return out_dtype


def _check_presentations(
    starts: np.ndarray, stops: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer):
        raise TypeError(f"n_bins must be an int, got {type(n_bins).__name__}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    starts = np.asarray(starts, dtype=np.float64)
    stops = np.asarray(stops, dtype=np.float64)
    if starts.ndim != 1 or starts.shape != stops.shape:
        raise ValueError(
            f"starts and stops must be 1-D of equal length, got {starts.shape} and {stops.shape}"
        )
    _raise_first(
        "presentation {i} has a non-finite time: start={s}, stop={e}",
        ~(np.isfinite(starts) & np.isfinite(stops)),
        starts,
        stops,
    )
    _raise_first(
        "presentations are not sorted by start: presentation {i1} starts at {s1}, "
        "before presentation {i}, which starts at {s}",
        starts[:-1] > starts[1:],
        starts,
        stops,
    )
    stops, _ = snap_touching(starts, stops)
    _raise_first(
        "presentation {i} has stop <= start: start={s}, stop={e}", stops <= starts, starts, stops
    )
    _raise_first(
        "presentations {i} and {i1} overlap: presentation {i} stops at {e}, after "
        "presentation {i1} starts at {s1} (by more than the "
        f"{TOUCH_TOLERANCE_S:g} s allowed for float noise)",
        stops[:-1] > starts[1:],
        starts,
        stops,
    )
    return starts, stops


def _raise_first(message: str, bad: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> None:
    """Raise ValueError for the first True in ``bad``, formatting presentation ``i`` (and i+1)."""
    if not bad.any():
        return
    i = int(np.argmax(bad))
    nxt = min(i + 1, starts.size - 1)
    raise ValueError(message.format(i=i, s=starts[i], e=stops[i], i1=i + 1, s1=starts[nxt]))


def _check_spike_trains(spike_times: list[np.ndarray]) -> list[np.ndarray]:
    trains = []
    for u, train in enumerate(spike_times):
        spikes = np.asarray(train, dtype=np.float64)
        if spikes.ndim != 1:
            raise ValueError(f"unit {u}: spike times must be 1-D, got shape {spikes.shape}")
        # One comparison pass catches both: NaN compares False.
        if not (spikes[1:] >= spikes[:-1]).all() or np.isnan(spikes[:1]).any():
            _raise_bad_train(u, spikes)
        trains.append(spikes)
    return trains


def _raise_bad_train(u: int, spikes: np.ndarray) -> None:
    nan = np.isnan(spikes)
    if nan.any():
        raise ValueError(f"unit {u}: spike times contain NaN (first at index {np.argmax(nan)})")
    i = int(np.argmax(spikes[1:] < spikes[:-1]))
    raise ValueError(
        f"unit {u}: spike times are not sorted ascending: index {i} is {spikes[i]}, "
        f"index {i + 1} is {spikes[i + 1]}; sort each unit's spike times first"
    )


def _check_edges(edges: np.ndarray) -> None:
    narrow = ~(np.diff(edges, axis=1) > 0).all(axis=1)  # (P,)
    if narrow.any():
        p = int(np.argmax(narrow))
        raise ValueError(
            f"presentation {p} ([{edges[p, 0]}, {edges[p, -1]}) s) is too short for "
            f"{edges.shape[1] - 1} bins: float64 cannot tell some of its edges apart"
        )


def _merge_closed_intervals(intervals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check closed intervals and merge them into sorted disjoint ``(lo, hi)`` arrays."""
    iv = np.asarray(intervals, dtype=np.float64)
    if iv.size == 0:
        return np.empty(0), np.empty(0)
    if iv.ndim != 2 or iv.shape[1] != 2:
        raise ValueError(f"intervals must have shape (K, 2), got {iv.shape}")
    if np.isnan(iv).any():
        raise ValueError("intervals contain NaN")
    if (iv[:, 0] > iv[:, 1]).any():
        k = int(np.argmax(iv[:, 0] > iv[:, 1]))
        raise ValueError(f"interval {k} has start > stop: [{iv[k, 0]}, {iv[k, 1]}]")
    iv = iv[np.argsort(iv[:, 0], kind="stable")]
    reach = np.maximum.accumulate(iv[:, 1])  # furthest stop so far
    # A new group starts where an interval begins after everything before it has ended
    # (closed ends: touching intervals merge).
    new = np.r_[True, iv[1:, 0] > reach[:-1]]
    group_end = np.r_[np.flatnonzero(new)[1:] - 1, iv.shape[0] - 1]
    return iv[new, 0], reach[group_end]


# --- computation --------------------------------------------------------------------------


def _windows(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Time windows ``(W, 2)`` covering every presentation, skipping long gaps.

    Only spikes inside these windows are read, so a session's other stimuli (hours between
    the natural-scenes blocks) cost one binary search per unit. A gap is skipped when it is
    longer than 1/64 of the span, at most ``_MAX_WINDOWS - 1`` of the longest ones. This
    affects speed only: spikes in a gap that is not skipped map to "no bin".
    """
    gaps = starts[1:] - stops[:-1]  # (P - 1,)
    long_gaps = np.flatnonzero(gaps > (stops[-1] - starts[0]) / 64)
    if long_gaps.size >= _MAX_WINDOWS:
        longest = np.argsort(gaps[long_gaps], kind="stable")[::-1][: _MAX_WINDOWS - 1]
        long_gaps = np.sort(long_gaps[longest])
    window_starts = np.r_[starts[0], starts[long_gaps + 1]]
    window_stops = np.r_[stops[long_gaps], stops[-1]]
    return np.stack([window_starts, window_stops], axis=1)


def _window_spans(trains: list[np.ndarray], windows: np.ndarray) -> np.ndarray:
    """(U, W, 2) index ranges ``[lo, hi)`` of each unit's spikes inside each window."""
    bounds = windows.ravel()  # (W, 2) -> (2W,): start, stop, start, stop, ...
    spans = np.empty((len(trains), windows.shape[0], 2), dtype=np.intp)
    for u, spikes in enumerate(trains):
        # Half-open windows: "left" on both ends keeps start <= t < stop.
        spans[u] = np.searchsorted(spikes, bounds, side="left").reshape(-1, 2)
    return spans


def _gather(
    trains: list[np.ndarray], spans: np.ndarray, units: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The given units' spikes inside the windows, concatenated: (m,) times, spikes per unit."""
    pieces = [
        trains[u][lo:hi]
        for u, unit_spans in zip(units, spans[units].tolist(), strict=True)
        for lo, hi in unit_spans
    ]
    per_unit = (spans[units, :, 1] - spans[units, :, 0]).sum(axis=1)  # (len(units),)
    times = np.concatenate(pieces) if pieces else np.empty(0)
    return times, per_unit


@dataclass(frozen=True)
class _EdgeIndex:
    """Maps spike times to their flat bin ``p * n_bins + k`` (``P * n_bins`` = no bin).

    ``j(t) = #{edges <= t}`` over the sorted distinct edges gives the slot ``[edge[j-1],
    edge[j])`` holding ``t``; ``slot_bin[j]`` says which bin that slot is, if any. ``j`` is the
    result of ``searchsorted(edges, t, "right")``, computed faster with a table over equal
    time cells: ``g(t) = int((t - origin) * inv_width)`` is monotone in ``t``, so every edge in
    an earlier cell is <= t and every edge in a later cell is > t. ``first[c]`` counts the edges
    in cells before c, and at most ``steps`` edges share one cell, so ``steps`` exact
    comparisons ``j += t >= edge[j]`` finish the search, bit for bit the same as the binary
    search. When cells would need too many steps (very uneven bins), it falls back to
    ``np.searchsorted``.
    """

    n_rows: int  # P * n_bins, also the flat bin meaning "in no bin"
    edges: np.ndarray  # (L + 1,) distinct edges, ascending, then +inf
    slot_bin: np.ndarray  # (L + 1,) flat bin of slot j (or n_rows)
    origin: float
    inv_width: float
    first: np.ndarray  # (n_cells,) number of edges in earlier cells
    steps: int | None  # None: use np.searchsorted

    @classmethod
    def build(cls, edges: np.ndarray, max_cells: int | None = None) -> _EdgeIndex:
        """Index the (P, n_bins + 1) edges of sorted, non-overlapping presentations.

        ``max_cells`` (>= 2) caps the table; default ``_CELLS_PER_EDGE`` per distinct edge.
        """
        n_pres, n_edges = edges.shape
        n_bins = n_edges - 1
        flat = edges.ravel()  # (P, n_bins + 1) -> (P * (n_bins + 1),), non-decreasing
        distinct = np.r_[True, flat[1:] > flat[:-1]]  # touching presentations share an edge
        uniq = flat[distinct]
        edge_id = np.cumsum(distinct) - 1  # position of each flat edge in `uniq`
        slot_bin = np.full(uniq.size + 1, n_pres * n_bins, dtype=np.intp)
        left_edges = edge_id.reshape(n_pres, n_edges)[:, :n_bins].ravel()  # (P * n_bins,)
        slot_bin[left_edges + 1] = np.arange(n_pres * n_bins)
        if max_cells is None:
            max_cells = _CELLS_PER_EDGE * uniq.size + 1024
        min_width = float(np.diff(edges, axis=1).min())  # narrowest bin
        origin, inv_width, first, steps = _cell_table(uniq, min_width, max_cells)
        return cls(n_pres * n_bins, np.r_[uniq, np.inf], slot_bin, origin, inv_width, first, steps)

    def lookup(self, times: np.ndarray) -> np.ndarray:
        """Flat bin of each time; times must lie in [first edge, last edge)."""
        if self.steps is None:
            return self.slot_bin[np.searchsorted(self.edges[:-1], times, side="right")]
        out = np.empty(times.size, dtype=np.intp)
        for a in range(0, times.size, _LOOKUP_CHUNK):
            chunk = times[a : a + _LOOKUP_CHUNK]
            cell = np.subtract(chunk, self.origin)
            cell *= self.inv_width
            j = self.first[cell.astype(np.intp)]
            for _ in range(self.steps):
                j += chunk >= self.edges[j]
            np.take(self.slot_bin, j, out=out[a : a + chunk.size])
        return out


def _cell_table(
    uniq: np.ndarray, min_width: float, max_cells: int
) -> tuple[float, float, np.ndarray, int | None]:
    """Cells of the lookup table: origin, 1 / width, edges before each cell, steps needed."""
    origin = float(uniq[0])
    span = float(uniq[-1]) - origin
    width = min_width  # cells as wide as the narrowest bin: about one edge per cell
    if span / width > max_cells - 1:
        width = span / (max_cells - 1)
    inv_width = 1.0 / width
    cell_of_edge = ((uniq - origin) * inv_width).astype(np.intp)  # non-decreasing
    n_cells = int(cell_of_edge[-1]) + 1
    first = np.searchsorted(cell_of_edge, np.arange(n_cells), side="left")
    steps = int(np.bincount(cell_of_edge).max())
    return origin, inv_width, first, (steps if steps <= _MAX_LOOKUP_STEPS else None)


def _scatter_counts(
    flat: np.ndarray,
    trains: list[np.ndarray],
    spans: np.ndarray,
    units: np.ndarray,
    index: _EdgeIndex,
) -> None:
    """Add the units' spikes into ``flat``, the unit-major (U, P * n_bins + 1) counts.

    Only for units whose counts cannot overflow ``flat.dtype``.
    """
    one = flat.dtype.type(1)  # same dtype as flat: np.add.at's fast path
    for i in range(0, units.size, _UNITS_PER_BLOCK):
        block = units[i : i + _UNITS_PER_BLOCK]
        times, per_unit = _gather(trains, spans, block)
        rows = index.lookup(times)  # (m,) each spike's row (presentation * n_bins + bin)
        ends = np.cumsum(per_unit)
        for u, lo, hi in zip(
            block.tolist(), (ends - per_unit).tolist(), ends.tolist(), strict=True
        ):
            np.add.at(flat[u], rows[lo:hi], one)


def _checked_counts(
    trains: list[np.ndarray],
    spans: np.ndarray,
    unit: int,
    index: _EdgeIndex,
    n_bins: int,
    dtype: np.dtype,
) -> np.ndarray:
    """(P * n_bins,) counts of one unit, counted in int64 and checked to fit ``dtype``."""
    times, _ = _gather(trains, spans, np.array([unit]))
    flat_bins = index.lookup(times)
    counts = np.bincount(flat_bins, minlength=index.n_rows + 1)[:-1]
    _check_fits(counts, unit, n_bins, dtype)
    return counts


def _check_fits(counts: np.ndarray, unit: int, n_bins: int, dtype: np.dtype) -> None:
    """Raise if a (P * n_bins,) count of ``unit`` does not fit ``dtype``."""
    limit = np.iinfo(dtype).max
    if counts.size == 0 or counts.max() <= limit:
        return
    p, k = divmod(int(np.argmax(counts > limit)), n_bins)
    raise ValueError(
        f"unit {unit} has {int(counts[p * n_bins + k])} spikes in presentation {p}, bin {k}: "
        f"more than {dtype.name} holds (max {limit}); pass a wider dtype, e.g. dtype=np.uint32"
    )


# --- a whole session -------------------------------------------------------------------


def invalid_intervals_for(invalid: pd.DataFrame, probe: str, probe_id: int) -> np.ndarray:
    """(K, 2) invalid intervals that apply to one probe, as AllenSDK scopes them.

    An interval applies when its tags name the probe (by name or id) or `all_probes`.
    """
    names = {probe, str(probe_id), "all_probes"}
    mask = [bool(names.intersection(map(str, tags))) for tags in invalid["tags"]]
    return invalid.loc[mask, ["start_time", "stop_time"]].to_numpy(dtype=np.float64).reshape(-1, 2)


def invalid_spikes(
    spikes: list[np.ndarray], units: pd.DataFrame, invalid: pd.DataFrame
) -> tuple[list[np.ndarray], dict[str, int]]:
    """Each unit's spikes inside the invalid intervals of its probe; their count per probe."""
    inside = [s[:0] for s in spikes]
    removed: dict[str, int] = {}
    # dropna=False: a unit whose probe is unknown still loses spikes in `all_probes` intervals
    groups = units.groupby(["probe", "probe_id"], sort=True, dropna=False).indices
    for (probe, probe_id), rows in groups.items():
        intervals = invalid_intervals_for(invalid, probe, probe_id)
        for u in rows:
            inside[u] = spikes_inside(spikes[u], intervals)
        removed[probe if isinstance(probe, str) else "unknown probe"] = int(
            sum(len(inside[u]) for u in rows)
        )
    return inside, removed


def check_presentation_rows(presentations: pd.DataFrame) -> None:
    """Raise ValueError naming the first bad row by its own presentation id and times.

    A NaN start sorts last, so a check after sorting would name another row's position
    and stop time; each row is checked here as the file holds it: finite times, stop >
    start, and (sorted by start) no overlap with the next presentation beyond float noise.
    """
    ids = presentations["presentation_id"].to_numpy()
    starts = presentations["start_time"].to_numpy(dtype=np.float64)
    stops = presentations["stop_time"].to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(starts) & np.isfinite(stops))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"presentation {int(ids[i])} (table row {i}) has a non-finite time: "
            f"start_time={starts[i]}, stop_time={stops[i]}"
        )
    bad = stops <= starts
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"presentation {int(ids[i])} (table row {i}) has stop_time <= start_time: "
            f"start_time={starts[i]}, stop_time={stops[i]}"
        )
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], stops[order]
    bad = e[:-1] - s[1:] >= TOUCH_TOLERANCE_S  # what `snap_touching` would not snap
    if bad.any():
        k = int(np.argmax(bad))
        a, b = int(ids[order[k]]), int(ids[order[k + 1]])
        raise ValueError(
            f"presentations {a} and {b} overlap: {a} runs {s[k]}-{e[k]} s, {b} starts at "
            f"{s[k + 1]} s (by more than the {TOUCH_TOLERANCE_S:g} s allowed for float noise)"
        )


def _named_by_id(message: str, units: pd.DataFrame, presentations: pd.DataFrame) -> str:
    """A `bin_spikes` message with `unit <position>` and `presentation <position>` (of the
    sorted table) rewritten as the rows' own ids."""
    unit_ids = units["unit_id"].to_numpy()
    pres_ids = presentations["presentation_id"].to_numpy()

    def unit(match: re.Match) -> str:
        u = int(match.group(1))
        return f"unit {int(unit_ids[u])} (units row {u})" if u < len(unit_ids) else match[0]

    def pres(match: re.Match) -> str:
        p = int(match.group(1))
        return f"presentation {int(pres_ids[p])}" if p < len(pres_ids) else match[0]

    message = re.sub(r"\bunit (\d+)", unit, message)
    return re.sub(r"\bpresentation (\d+)", pres, message)


def bin_session(
    spikes: list[np.ndarray],
    units: pd.DataFrame,
    presentations: pd.DataFrame,
    invalid: pd.DataFrame,
    n_bins: int,
) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """Bin a whole session, invalid spikes removed: (counts (P, n_bins, U), presentations, report).

    Presentations come back sorted by start time, with an `overlaps_invalid` column and
    float-noise overlaps snapped (`snap_touching`); the report counts spikes, binned
    spikes, the invalid spikes removed per probe and the snapped stops.
    """
    check_presentation_rows(presentations)
    presentations = presentations.sort_values("start_time", kind="stable").reset_index(drop=True)
    starts = presentations["start_time"].to_numpy()
    stops, n_snapped = snap_touching(starts, presentations["stop_time"].to_numpy())
    presentations["stop_time"] = stops
    try:
        counts = bin_spikes(spikes, starts, stops, n_bins)  # (P, T, U)
    except ValueError as err:  # the kernel names positions: name the rows by their ids
        raise ValueError(_named_by_id(str(err), units, presentations)) from err
    # Remove invalid spikes by subtracting their counts: only presentations overlapping an
    # invalid interval can hold one, and the spike trains themselves are never copied.
    all_invalid = invalid[["start_time", "stop_time"]].to_numpy(dtype=np.float64).reshape(-1, 2)
    overlap = presentations_overlapping(starts, stops, all_invalid)
    presentations["overlaps_invalid"] = overlap
    inside, removed = invalid_spikes(spikes, units, invalid)
    if overlap.any():
        bad = bin_spikes(inside, starts[overlap], stops[overlap], n_bins, counts.dtype)
        counts[overlap] -= bad
    report = {
        "n_units": len(units),
        "n_presentations": len(presentations),
        "n_bins": n_bins,
        "n_spikes": int(sum(len(s) for s in spikes)) - int(sum(removed.values())),
        "n_spikes_binned": int(counts.sum(dtype=np.int64)),
        "invalid_spikes_removed": {**removed, "total": int(sum(removed.values()))},
        "presentations_overlapping_invalid": int(presentations["overlaps_invalid"].sum()),
        "stops_snapped_to_next_start": n_snapped,
    }
    return counts, presentations, report
